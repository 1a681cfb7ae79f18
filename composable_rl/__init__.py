"""composable_rl: one multi-head soft-Q network, composed at run time without retraining.

The library knows no world: worlds live in the `envs` package (or a user's own module) and
register themselves with `composable_rl.registry`; the Gymnasium ids of the built-in worlds are
registered by `import envs`.
"""
