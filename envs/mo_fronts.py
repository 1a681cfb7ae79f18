"""Pareto fronts that MO-Gymnasium environments ship, for the IGD of a multi-objective
evaluation (the Gymnasium world's `pareto_front` key)."""

import gymnasium
import numpy as np


def minecart_front(env: gymnasium.Env, gamma: float) -> np.ndarray:
    """minecart-v0's front of discounted (ore1, ore2, fuel) returns, as the env computes it
    (MO-Gymnasium documents it as an approximation)."""
    return np.asarray(env.unwrapped.pareto_front(gamma=gamma))
