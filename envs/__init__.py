"""Worlds: batched torch gridworlds, the linear-quadratic, point-goals, point-office and
point-foraging worlds, the side-effect worlds (each registered under its config name), the
Gymnasium adapter, Gymnasium faces of the gridworlds with their Gymnasium ids (registered on
import), and `check_world` for user worlds."""

from envs import (
    foraging,
    gym_ids,
    linear_quadratic,
    object_rooms,
    point_foraging,
    point_goals,
    point_office,
    safety,
    temporal,
)
from envs.gym_ids import FORAGING_ID, OBJECT_ROOMS_ID, OFFICE_ID

__all__ = [
    "FORAGING_ID",
    "OBJECT_ROOMS_ID",
    "OFFICE_ID",
    "foraging",
    "gym_ids",
    "linear_quadratic",
    "object_rooms",
    "point_foraging",
    "point_goals",
    "point_office",
    "safety",
    "temporal",
]
