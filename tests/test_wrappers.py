"""IntegerBoxAsMultiDiscrete: integer Box observations become one-hot index observations."""

import gymnasium
import mo_gymnasium  # noqa: F401  (registers four-room-v0)
import numpy as np
import pytest
from gymnasium import spaces

from composable_rl.config import WorldConfig, from_dict
from composable_rl.registry import make_world
from envs.wrappers import IntegerBoxAsMultiDiscrete


def test_four_room_coordinates_become_index_observations():
    env = IntegerBoxAsMultiDiscrete(gymnasium.make("four-room-v0"))
    assert env.observation_space == spaces.MultiDiscrete(np.full(14, 14))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.int64 and obs[:2].tolist() == [12, 0] and obs[2:].sum() == 0
    section = {"name": "gymnasium", "id": "four-room-v0"}
    section["wrappers"] = ["envs.wrappers:IntegerBoxAsMultiDiscrete"]
    world = make_world(from_dict(WorldConfig, section), 2)
    spec = world.observation_spec
    assert (spec.kind, spec.shape, spec.num_features) == ("indices", (14,), 14 * 14)
    first = world.reset(0)
    assert first[0, :2].tolist() == [12, 14]  # row 12, then column 0 of the second component
    world.close()


def test_non_integer_or_unbounded_boxes_are_refused():
    with pytest.raises(ValueError, match="Box of integers"):
        IntegerBoxAsMultiDiscrete(gymnasium.make("CartPole-v1"))
    env = gymnasium.make("CartPole-v1")
    env.observation_space = spaces.Box(0, np.inf, (2,), np.int64)
    with pytest.raises(ValueError, match="finite bounds"):
        IntegerBoxAsMultiDiscrete(env)
