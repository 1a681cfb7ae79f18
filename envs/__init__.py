"""Worlds: batched torch gridworlds (each registered under its config name), the Gymnasium
adapter, Gymnasium faces of the gridworlds, and `check_world` for user worlds."""

import gymnasium

from envs import foraging, object_rooms, temporal

OBJECT_ROOMS_ID = "composable_rl/ObjectRooms-v0"
OFFICE_ID = "composable_rl/Office-v0"
FORAGING_ID = "composable_rl/Foraging-v0"

for _id, _entry in (
    (OBJECT_ROOMS_ID, "envs.gym_env:ObjectRoomsEnv"),
    (OFFICE_ID, "envs.gym_env:OfficeEnv"),
    (FORAGING_ID, "envs.foraging:ForagingEnv"),
):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry, disable_env_checker=True)

__all__ = [
    "FORAGING_ID",
    "OBJECT_ROOMS_ID",
    "OFFICE_ID",
    "foraging",
    "object_rooms",
    "temporal",
]
