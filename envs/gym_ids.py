"""The Gymnasium ids of the built-in worlds, registered on import (`import envs` does it); the
classes load only when an id is made. With the package named in the id,
`gymnasium.make("envs:composable_rl/ObjectRooms-v0")` needs no import at all."""

import gymnasium

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
