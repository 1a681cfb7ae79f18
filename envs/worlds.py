"""World families by config name, so that training, evaluation and oracles build any of them."""

from typing import Any

from envs.foraging import DriveReductionWorld, ForagingWorld
from envs.object_rooms import ObjectRooms
from envs.office import OfficeWorld
from envs.temporal import OfficeTask

WORLDS = {
    "object_rooms": ObjectRooms,
    "office": OfficeWorld,
    "office_task": OfficeTask,
    "foraging": ForagingWorld,
    "foraging_drive": DriveReductionWorld,
}
World = ObjectRooms | OfficeWorld | ForagingWorld


def make_world(kwargs: dict[str, Any], num_envs: int) -> World:
    """The world `kwargs['name']` (default object_rooms) with the other kwargs and num_envs."""
    kwargs = dict(kwargs)
    name = kwargs.pop("name", "object_rooms")
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; known worlds: {sorted(WORLDS)}")
    return WORLDS[name](num_envs=num_envs, **kwargs)
