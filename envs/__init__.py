"""Environments: batched torch gridworlds, their Gymnasium wrappers and exact oracles."""

import gymnasium

from envs.gym_env import ObjectRoomsEnv, ScalarizedReward
from envs.object_rooms import ObjectRooms

OBJECT_ROOMS_ID = "composable_rl/ObjectRooms-v0"

if OBJECT_ROOMS_ID not in gymnasium.registry:
    gymnasium.register(
        id=OBJECT_ROOMS_ID,
        entry_point="envs.gym_env:ObjectRoomsEnv",
        disable_env_checker=True,
    )

__all__ = ["OBJECT_ROOMS_ID", "ObjectRooms", "ObjectRoomsEnv", "ScalarizedReward"]
