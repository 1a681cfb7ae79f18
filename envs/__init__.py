"""Worlds: batched torch gridworlds, the linear-quadratic, point-goals, point-office and
point-foraging worlds (each registered under its config name), the Gymnasium adapter, Gymnasium
faces of the gridworlds, and `check_world` for user worlds."""

from composable_rl import FORAGING_ID, OBJECT_ROOMS_ID, OFFICE_ID
from envs import (
    foraging,
    linear_quadratic,
    object_rooms,
    point_foraging,
    point_goals,
    point_office,
    temporal,
)

__all__ = [
    "FORAGING_ID",
    "OBJECT_ROOMS_ID",
    "OFFICE_ID",
    "foraging",
    "linear_quadratic",
    "object_rooms",
    "point_foraging",
    "point_goals",
    "point_office",
    "temporal",
]
