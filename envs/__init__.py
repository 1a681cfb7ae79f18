"""Environments: batched torch gridworlds, their Gymnasium wrappers and exact oracles."""

import gymnasium

from envs.gym_env import ObjectRoomsEnv, OfficeEnv, ScalarizedReward
from envs.object_rooms import ObjectRooms
from envs.office import OfficeWorld

OBJECT_ROOMS_ID = "composable_rl/ObjectRooms-v0"
OFFICE_ID = "composable_rl/Office-v0"

for _id, _entry in ((OBJECT_ROOMS_ID, "ObjectRoomsEnv"), (OFFICE_ID, "OfficeEnv")):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=f"envs.gym_env:{_entry}", disable_env_checker=True)

__all__ = [
    "OBJECT_ROOMS_ID",
    "OFFICE_ID",
    "ObjectRooms",
    "ObjectRoomsEnv",
    "OfficeEnv",
    "OfficeWorld",
    "ScalarizedReward",
]
