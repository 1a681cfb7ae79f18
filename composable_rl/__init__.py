"""composable_rl: one multi-head soft-Q network, composed at run time without retraining.

Importing the package registers the Gymnasium ids of the built-in worlds; their classes load
only when an id is made. So `gymnasium.make("composable_rl/ObjectRooms-v0")` works after
`import composable_rl`, and `gymnasium.make("composable_rl:composable_rl/ObjectRooms-v0")`
works with no import at all (Gymnasium imports the module named before the colon).
"""

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
