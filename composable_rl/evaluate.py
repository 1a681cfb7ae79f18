"""`python -m composable_rl.evaluate`: the zero-shot composition CLI (see `zero_shot.py`).

The CLI wires checkpoints, worlds and oracles together, so its body lives in the top-level
`zero_shot` module beside `train.py`; the library itself never imports `agents` or `envs`.
"""

if __name__ == "__main__":
    from zero_shot import main

    main()
