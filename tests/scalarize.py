"""A scalar-reward view of a vector-reward env, for Gymnasium's check_env (which wants floats)."""

import gymnasium
import numpy as np


def scalarized(env: gymnasium.Env, weights) -> gymnasium.Env:
    """`env` with reward `reward @ weights`, through Gymnasium's TransformReward."""
    w = np.asarray(weights, dtype=np.float32)
    return gymnasium.wrappers.TransformReward(env, lambda reward: float(reward @ w))
