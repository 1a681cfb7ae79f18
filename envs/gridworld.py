"""Shared grid machinery: ASCII layouts, wall-blocked moves and a counter-based per-slot RNG."""

from collections.abc import Sequence

import torch
from torch import Tensor

LAYOUTS: dict[str, tuple[str, ...]] = {
    "four_rooms": (
        "#############",
        "#.....#.....#",
        "#.....#.....#",
        "#...........#",
        "#.....#.....#",
        "#.....#.....#",
        "##.####.....#",
        "#.....###.###",
        "#.....#.....#",
        "#.....#.....#",
        "#...........#",
        "#.....#.....#",
        "#############",
    ),
    "open5": (
        "#######",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        "#.....#",
        "#######",
    ),
}

NUM_ACTIONS = 4
ACTION_NAMES = ("up", "right", "down", "left")

_MASK32 = 0xFFFFFFFF
_GOLDEN32 = 0x9E3779B9


def parse_layout(layout: str | Sequence[str]) -> Tensor:
    """Wall mask [H, W] (True = wall) from a layout name in LAYOUTS or a sequence of ASCII rows."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known layouts: {sorted(LAYOUTS)}")
        layout = LAYOUTS[layout]
    rows = list(layout)
    if not rows or not rows[0]:
        raise ValueError("a layout needs at least one non-empty row")
    if any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("all layout rows must have the same length")
    if any(ch not in "#." for row in rows for ch in row):
        raise ValueError("layout rows may only contain '#' (wall) and '.' (free)")
    return torch.tensor([[ch == "#" for ch in row] for row in rows], dtype=torch.bool)


def move(cells: Tensor, actions: Tensor, walls: Tensor) -> Tensor:
    """Flat cells [N] after actions [N] (0 up, 1 right, 2 down, 3 left); walls and edges block."""
    height, width = walls.shape
    d_row = (actions == 2).long() - (actions == 0).long()
    d_col = (actions == 1).long() - (actions == 3).long()
    row = (torch.div(cells, width, rounding_mode="floor") + d_row).clamp(0, height - 1)
    col = (cells % width + d_col).clamp(0, width - 1)
    target = row * width + col
    return torch.where(walls.flatten()[target], cells, target)


def _mix32(x: Tensor) -> Tensor:
    """32-bit avalanche mix on int64 tensors; only the low 32 bits are kept, so overflow is fine."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def hash_bits(seed: Tensor, counter: Tensor, index: Tensor) -> Tensor:
    """32-bit hashes (int64 [N, J]) that depend only on (seed_i, counter_i, index_ij)."""
    seed = seed.long()
    h = _mix32(seed ^ _mix32((seed >> 32) + _GOLDEN32))
    h = _mix32(h ^ _mix32(counter.long() + 2 * _GOLDEN32))
    return _mix32(h[:, None] ^ _mix32(index.long() + 3 * _GOLDEN32))


def hash_uniform(seed: Tensor, counter: Tensor, index: Tensor) -> Tensor:
    """Uniforms in [0, 1) float64 [N, J] that depend only on (seed_i, counter_i, index_ij)."""
    return hash_bits(seed, counter, index).double() * (1.0 / 2**32)
