"""Gymnasium wrappers that help the adapter read common observation layouts well."""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces


class IntegerBoxAsMultiDiscrete(gymnasium.ObservationWrapper):
    """Reads a Box of integers with finite bounds (e.g. grid coordinates and collected flags) as
    MultiDiscrete, so that the adapter feeds every component to the network one-hot.

    Component i takes the values low[i]..high[i]; the observation becomes value - low.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or not np.issubdtype(space.dtype, np.integer):
            raise ValueError(f"IntegerBoxAsMultiDiscrete needs a Box of integers, got {space}")
        if not (space.is_bounded("both")):
            raise ValueError(f"IntegerBoxAsMultiDiscrete needs finite bounds, got {space}")
        self._low = space.low.astype(np.int64)
        self.observation_space = spaces.MultiDiscrete(space.high.astype(np.int64) - self._low + 1)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The observation shifted so that every component starts at 0."""
        return np.asarray(observation, dtype=np.int64) - self._low
