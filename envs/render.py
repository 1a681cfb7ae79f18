"""RGB drawing of grid states: walls, floor, coloured object glyphs and the agent marker."""

from collections.abc import Sequence

import numpy as np

CELL_PX = 16
WALL_RGB = (64, 64, 64)
FLOOR_RGB = (236, 236, 236)
AGENT_RGB = (220, 40, 40)
OUTLINE_RGB = (20, 20, 20)
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "beige": (214, 184, 132),
    "blue": (40, 90, 220),
    "purple": (140, 60, 180),
}
FALLBACK_RGB = (
    (40, 160, 70),
    (240, 140, 20),
    (20, 170, 190),
    (230, 80, 170),
    (190, 190, 30),
    (120, 80, 40),
)

_Y, _X = np.mgrid[0:CELL_PX, 0:CELL_PX] + 0.5 - CELL_PX / 2
GLYPHS: dict[str, np.ndarray] = {
    "circle": _X**2 + _Y**2 <= 5.5**2,
    "square": (np.abs(_X) <= 5) & (np.abs(_Y) <= 5),
}
FALLBACK_GLYPHS = (
    (_Y >= -5.5) & (_Y <= 5.5) & (np.abs(_X) <= (_Y + 5.5) / 2),
    ((np.abs(_X) <= 1.5) | (np.abs(_Y) <= 1.5)) & (np.abs(_X) <= 6) & (np.abs(_Y) <= 6),
    (_X**2 + _Y**2 <= 6**2) & (_X**2 + _Y**2 >= 3.5**2),
)
AGENT_OUTLINE = np.abs(_X) + np.abs(_Y) <= 5.5
AGENT_FILL = np.abs(_X) + np.abs(_Y) <= 4


def _with_fallback(names: Sequence[str], known: dict, fallback: Sequence) -> list:
    """Look names up in known; each unknown distinct name gets the next fallback (cycling)."""
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    extra = {n: fallback[i % len(fallback)] for i, n in enumerate(unknown)}
    return [known.get(n, extra.get(n)) for n in names]


def colours_rgb(colours: Sequence[str]) -> list[tuple[int, int, int]]:
    """RGB triple per colour name; beige/blue/purple are fixed, other names get distinct colours."""
    return _with_fallback(colours, COLOUR_RGB, FALLBACK_RGB)


def shape_glyphs(shapes: Sequence[str]) -> list[np.ndarray]:
    """Boolean CELL_PX x CELL_PX glyph per shape name; circle/square fixed, others get fallbacks."""
    return _with_fallback(shapes, GLYPHS, FALLBACK_GLYPHS)


def draw_grid(
    walls: np.ndarray,
    agent: int,
    objects: Sequence[int],
    object_rgb: Sequence[tuple[int, int, int]],
    object_glyph: Sequence[np.ndarray],
) -> np.ndarray:
    """uint8 image [H*16, W*16, 3] of walls [H, W], objects at flat cells and the agent on top."""
    width = walls.shape[1]
    tiles = np.where(walls[..., None], WALL_RGB, FLOOR_RGB).astype(np.uint8)
    image = np.repeat(np.repeat(tiles, CELL_PX, axis=0), CELL_PX, axis=1)

    def paint(cell: int, mask: np.ndarray, rgb: tuple[int, int, int]) -> None:
        row, col = divmod(int(cell), width)
        image[row * CELL_PX : (row + 1) * CELL_PX, col * CELL_PX : (col + 1) * CELL_PX][mask] = rgb

    for cell, rgb, glyph in zip(objects, object_rgb, object_glyph, strict=True):
        paint(cell, glyph, rgb)
    paint(agent, AGENT_OUTLINE, OUTLINE_RGB)
    paint(agent, AGENT_FILL, AGENT_RGB)
    return image
