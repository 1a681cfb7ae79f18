"""Peer baselines: morl-baselines' GPI-LS and Envelope Q-learning on MO-Gymnasium's discrete
worlds, and CAPQL (Lu et al. 2023, a weight-conditioned soft actor-critic) on its MuJoCo worlds.

Why: the bench compares our agents with a published MORL library at the same env-step budget.
To score both libraries the same way, this module trains a peer agent and returns its value
vectors (mean discounted vector returns of greedy episodes) for a given weight set; the bench
then computes expected utility from those vectors exactly as it does for our own agents.

morl-baselines is optional (extra ``peers``: ``pip install -e ".[peers]"``; its pycddlib==2.1.6
builds from source and needs gcc and libgmp-dev). It is imported inside the functions only, so
this module imports without it.

Settings follow morl-baselines' own examples (``examples/envelope_minecart.py`` and
``examples/gpi_pd_minecart.py`` with ``gpi_pd=False``); upstream has no four-room example, so
four-room uses the same settings. Differences from upstream ``train()`` calls, all so that a
budget means exactly ``steps`` env steps of the training env and evaluation stays cheap:

* ``log=False``: no wandb, so none of upstream's periodic metric evaluations run (they are gated
  on ``log``); Envelope gets ``eval_env=None`` and thus evaluates nothing while training.
* GPI-LS is driven by ``_train_gpi_ls`` below, a copy of ``GPIPD.train``'s loop (weight choice by
  GPI-LS, ``train_iteration``, add the evaluated values to the linear support) in which the last
  iteration takes the remainder of the budget (upstream drops it: ``total // timesteps_per_iter``
  iterations, so a budget under 10k steps trains nothing), the GPI values of the corner weights
  are computed once per weight choice (upstream recomputes the same list once per corner
  weight), the final iteration's support update is skipped (it changes nothing the agent uses),
  and there are no checkpoints. Those weight-choice evaluations are part of GPI-LS itself; they
  run on a separate eval env, are not counted in ``steps`` and are counted in the wall-clock.
* GPI-LS keeps ``per=True`` (see ``GPILS_KWARGS``). No hypervolume is computed, so neither peer
  needs a reference point (upstream's minecart one is [0, 0, -200]).
* CAPQL follows ``examples/train_capql.py`` (Adam at 3e-4, batch 256, one update per env step,
  its class defaults otherwise: fixed alpha 0.2, 1,000 random steps first), on one env instead
  of eight, with ``log=False`` so that it evaluates nothing while training.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

PEERS = ("GPI-LS", "Envelope")
ENV_IDS = ("four-room-v0", "minecart-v0")
CONTINUOUS_PEERS = ("CAPQL",)
CONTINUOUS_ENV_IDS = ("mo-hopper-v5", "mo-halfcheetah-v5")
INSTALL_HINT = (
    'morl-baselines is not importable; install the optional extra: pip install -e ".[peers]" '
    "(pycddlib==2.1.6 builds from source: needs gcc and libgmp-dev)"
)

# examples/envelope_minecart.py, minus logging; gamma comes from the caller.
ENVELOPE_KWARGS: dict[str, Any] = {
    "max_grad_norm": 0.1,
    "learning_rate": 3e-4,
    "batch_size": 64,
    "net_arch": [256, 256, 256, 256],
    "buffer_size": int(2e6),
    "initial_epsilon": 1.0,
    "final_epsilon": 0.05,
    "epsilon_decay_steps": 50_000,
    "initial_homotopy_lambda": 0.0,
    "final_homotopy_lambda": 1.0,
    "homotopy_decay_steps": 10_000,
    "learning_starts": 100,
    "envelope": True,
    "gradient_updates": 1,
    "target_net_update_freq": 1000,
    "tau": 1.0,
}

# examples/train_capql.py, minus logging; gamma comes from the caller.
CAPQL_KWARGS: dict[str, Any] = {"learning_rate": 3e-4, "batch_size": 256, "gradient_updates": 1}

# examples/gpi_pd_minecart.py with gpi_pd=False (GPILS sets dyna=gpi_pd=False), except per:
# the example's per=gpi_pd=False crashes in morl-baselines 1.3.0 (GPIPD.update unpacks 5 values,
# ReplayBuffer.sample returns 6), so per keeps the GPILS class default True, which is also what
# their benchmark runs used. The example takes g from the command line; 20 is the class default.
# Upstream applies g only once global_step >= dynamics_rollout_starts (5000), even without dyna:
# 1 gradient update per env step before that, g after.
GPILS_KWARGS: dict[str, Any] = {
    "num_nets": 2,
    "max_grad_norm": None,
    "learning_rate": 3e-4,
    "batch_size": 128,
    "net_arch": [256, 256, 256, 256],
    "buffer_size": int(2e5),
    "initial_epsilon": 1.0,
    "final_epsilon": 0.05,
    "epsilon_decay_steps": 50_000,
    "learning_starts": 100,
    "alpha_per": 0.6,
    "min_priority": 0.01,
    "per": True,
    "use_gpi": True,
    "gradient_updates": 20,
    "target_net_update_freq": 200,
    "tau": 1.0,
}
GPILS_STEPS_PER_ITER = 10_000  # the example's timesteps_per_iter
# Episodes per GPI-LS weight-choice evaluation (upstream num_eval_episodes_for_front=5).
# four-room is deterministic (one start cell, greedy policy), so one episode gives the same value.
GPILS_EVAL_EPISODES = {"four-room-v0": 1, "minecart-v0": 5}


class _StepCounter(gym.Wrapper):
    """Counts env steps, so the training budget and the evaluation cost can be checked."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action: Any) -> Any:
        """Step the wrapped env and count it."""
        self.steps += 1
        return self.env.step(action)


def peer_available() -> str | None:
    """Return None if both peer modules import, else a one-line install message."""
    try:
        import morl_baselines.multi_policy.capql.capql  # noqa: F401
        import morl_baselines.multi_policy.envelope.envelope  # noqa: F401
        import morl_baselines.multi_policy.gpi_pd.gpi_pd  # noqa: F401
    except ImportError as err:
        return f"{INSTALL_HINT} [{type(err).__name__}: {err}]"
    return None


def peers_of(env_id: str) -> tuple[str, ...]:
    """The peers that train on `env_id`: the discrete ones or CAPQL."""
    if env_id in ENV_IDS:
        return PEERS
    if env_id in CONTINUOUS_ENV_IDS:
        return CONTINUOUS_PEERS
    raise ValueError(f"unsupported env {env_id!r}; expected one of {ENV_IDS + CONTINUOUS_ENV_IDS}")


def _check(name: str, env_id: str) -> None:
    if name not in peers_of(env_id):
        raise ValueError(f"unknown peer {name!r} for {env_id}; expected one of {peers_of(env_id)}")


def _make_env(env_id: str, seed: int) -> _StepCounter:
    """Make a seeded, step-counted MO-Gymnasium env (with its registered time limit)."""
    import mo_gymnasium as mo_gym

    env = mo_gym.make(env_id)
    if env.spec is None or env.spec.max_episode_steps is None:  # both ids register one today
        env = gym.wrappers.TimeLimit(env, max_episode_steps=1000)
    env.reset(seed=seed)  # seeds env.np_random; four-room/minecart also draw from random/np.random
    env.action_space.seed(seed)
    return _StepCounter(env)


def _seed_all(seed: int) -> None:
    """Seed python random, numpy's global RNG and torch (morl-baselines' seed_everything)."""
    from morl_baselines.common.evaluation import seed_everything

    seed_everything(seed)


@contextlib.contextmanager
def _cached_policy_evaluation(module: Any) -> Iterator[None]:
    """Evaluate each corner weight once while LinearSupport picks a weight (same values)."""
    original = module.policy_evaluation_mo
    cache: dict[tuple[bytes, int], Any] = {}

    def cached(
        agent: Any, env: Any, w: np.ndarray, scalarization: Any = np.dot, rep: int = 5
    ) -> Any:
        key = (np.asarray(w, dtype=np.float64).tobytes(), rep)
        if key not in cache:
            cache[key] = original(agent, env, w, scalarization=scalarization, rep=rep)
        return cache[key]

    module.policy_evaluation_mo = cached
    try:
        yield
    finally:
        module.policy_evaluation_mo = original


def _train_gpi_ls(agent: Any, eval_env: gym.Env, steps: int, eval_episodes: int) -> int:
    """Run GPIPD.train's GPI-LS loop for exactly `steps` training env steps; return steps run."""
    from morl_baselines.common.evaluation import policy_evaluation_mo
    from morl_baselines.multi_policy.linear_support import linear_support as ls_module

    support = ls_module.LinearSupport(num_objectives=agent.reward_dim, epsilon=None, verbose=False)
    done = 0
    while done < steps:
        agent.set_weight_support(support.get_weight_support())
        use_gpi, agent.use_gpi = agent.use_gpi, True
        with _cached_policy_evaluation(ls_module):
            w = support.next_weight(
                algo="gpi-ls", gpi_agent=agent, env=eval_env, rep_eval=eval_episodes
            )
        agent.use_gpi = use_gpi
        if w is None:  # no corner weight left: upstream stops training here too
            warnings.warn(f"GPI-LS ran out of corner weights after {done} steps", stacklevel=3)
            break
        support_weights = support.get_weight_support() + support.get_corner_weights(top_k=4) + [w]
        n = min(GPILS_STEPS_PER_ITER, steps - done)
        agent.train_iteration(
            total_timesteps=n,
            weight=w,
            weight_support=support_weights,
            change_w_every_episode=True,
            reset_num_timesteps=False,
            eval_env=None,
            reset_learning_starts=False,
        )
        done += n
        if done < steps:  # the last update would only feed a weight choice that never comes
            for wcw in support_weights:
                value = policy_evaluation_mo(agent, eval_env, wcw, rep=eval_episodes)[3]
                support.add_solution(value, wcw)
    return done


def train_peer(name: str, env_id: str, steps: int, gamma: float, seed: int) -> tuple[object, float]:
    """Train peer `name` on `env_id` for exactly `steps` training env steps, on the CPU.

    Returns (agent, wall-clock seconds of training). The seconds cover the train loop only
    (not agent construction); for GPI-LS they include its weight-choice evaluations. The agent
    gets a ``bench_info`` dict: env_steps (training env), eval_env_steps, wall_s.
    """
    _check(name, env_id)
    if steps < 1:
        raise ValueError("steps must be >= 1")
    _seed_all(seed)
    env = _make_env(env_id, seed)
    eval_env: _StepCounter | None = None
    if name == "Envelope":
        from morl_baselines.multi_policy.envelope.envelope import Envelope

        agent: Any = Envelope(
            env, gamma=gamma, log=False, seed=seed, device="cpu", **ENVELOPE_KWARGS
        )
        start = time.perf_counter()
        agent.train(
            total_timesteps=steps,
            eval_env=None,
            weight=None,  # a random weight per episode, as in the paper and the example
            total_episodes=None,
            reset_num_timesteps=True,
            reset_learning_starts=False,
        )
        wall = time.perf_counter() - start
        trained = steps
    elif name == "CAPQL":
        from morl_baselines.multi_policy.capql.capql import CAPQL

        agent = CAPQL(env, gamma=gamma, log=False, seed=seed, device="cpu", **CAPQL_KWARGS)
        reference = np.full(agent.reward_dim, -100.0)  # unused without logging
        start = time.perf_counter()
        agent.train(total_timesteps=steps, eval_env=None, ref_point=reference)
        wall = time.perf_counter() - start
        trained = steps
    else:
        from morl_baselines.multi_policy.gpi_pd.gpi_pd import GPILS

        eval_env = _make_env(env_id, seed + 1)
        agent = GPILS(env, gamma=gamma, log=False, seed=seed, device="cpu", **GPILS_KWARGS)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # upstream prints CCS updates
            trained = _train_gpi_ls(agent, eval_env, steps, GPILS_EVAL_EPISODES[env_id])
        wall = time.perf_counter() - start
    if env.steps != trained:
        raise RuntimeError(f"{name} took {env.steps} training env steps, expected {trained}")
    agent.bench_info = {
        "env_steps": env.steps,
        "eval_env_steps": 0 if eval_env is None else eval_env.steps,
        "wall_s": wall,
    }
    return agent, wall


def peer_values(
    agent: object,
    name: str,
    env_id: str,
    weights: np.ndarray,
    episodes: int,
    gamma: float,
    seed: int,
) -> np.ndarray:
    """Value vectors [W, K]: per weight, the mean discounted vector return of greedy episodes.

    The agent acts through its own ``eval(obs, w)``: GPI over its weight support for GPI-LS,
    the w-conditioned Q-network for Envelope, the w-conditioned actor's mean for CAPQL. The
    discount starts at 1 on the first reward.
    Each weight reseeds the global RNGs with `seed` (common random numbers across weights).
    """
    _check(name, env_id)
    weights = np.asarray(weights, dtype=np.float64)
    reward_dim = int(getattr(agent, "reward_dim", weights.shape[-1]))
    if weights.ndim != 2 or weights.shape[1] != reward_dim:
        raise ValueError(f"weights must be [W, {reward_dim}], got {weights.shape}")
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    act = agent.eval  # type: ignore[attr-defined]
    values = np.zeros_like(weights)
    for i, w in enumerate(weights):
        _seed_all(seed)
        env = _make_env(env_id, seed)
        total = np.zeros(reward_dim)
        for _ in range(episodes):
            obs, _ = env.reset()
            discount, done = 1.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs, w))
                total += discount * np.asarray(reward, dtype=np.float64)
                discount *= gamma
                done = bool(terminated or truncated)
        values[i] = total / episodes
        env.close()
    return values
