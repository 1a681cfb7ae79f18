"""Batched object-rooms gridworld: N envs stepped by tensor ops, one reward head per attribute."""

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from composable_rl.config import doc
from composable_rl.registry import register_world
from composable_rl.world import BOUND_HEADS
from envs.gridworld import (
    GRID_ACTIONS,
    GoalEpisodes,
    GoalGridConfig,
    check_names,
    hash_keyed,
    index_keys,
    move_table,
    parse_layout,
)
from envs.render import colours_rgb, draw_grid, shape_glyphs


class ObjectRooms(GoalEpisodes):
    """N gridworlds with one object per (colour, shape); collecting one ends the episode.

    With `bound_heads`, two more reward columns MAX and MIN give r_max / r_min for collecting
    any object: the bounds Q_MAX and Q_MIN that Boolean negation needs.

    State lives in tensors: `agent` [N] and `objects` [N, M] (flat cells), `t` [N] steps taken,
    `seeds` [N] and `episode` [N] (the per-slot RNG key: every draw is a hash of both). A new
    instance is already reset with seed 0.
    """

    action_spec = GRID_ACTIONS

    def __init__(
        self,
        *,
        num_envs: int = 64,
        layout: str | Sequence[str] = "four_rooms",
        colours: Sequence[str] = ("beige", "blue", "purple"),
        shapes: Sequence[str] = ("circle", "square"),
        heads: Sequence[str] | None = None,
        object_positions: Sequence[Sequence[int]] | None = None,
        max_steps: int = 50,
        r_max: float = 2.0,
        r_min: float = -0.1,
        step_reward: float = -0.1,
        observation: str = "planes",
        bound_heads: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        if num_envs < 1 or max_steps < 1:
            raise ValueError("num_envs and max_steps must be positive")
        if observation not in ("planes", "indices"):
            raise ValueError(f"observation must be 'planes' or 'indices', got {observation!r}")
        self.observation = observation
        self.num_envs, self.max_steps = num_envs, max_steps
        self.r_max, self.r_min, self.step_reward = r_max, r_min, step_reward
        self.device = torch.device(device)
        self.walls = parse_layout(layout).to(self.device)
        self.height, self.width = self.walls.shape
        self.free_cells = torch.nonzero(~self.walls.flatten()).flatten()
        self.colours, self.shapes = check_names(colours, "colour"), check_names(shapes, "shape")
        if set(self.colours) & set(self.shapes):
            raise ValueError("colour and shape names must differ")
        pairs = [(c, s) for c in self.colours for s in self.shapes]
        self.goal_names = [f"{c}_{s}" for c, s in pairs]
        self.num_goals = len(pairs)
        attribute_heads = self._resolve_heads(heads)
        bounds = list(BOUND_HEADS) if bound_heads else []
        self.head_names = attribute_heads + bounds
        self.num_heads = len(self.head_names)
        self.goal_membership = torch.tensor(
            [[h in pair for h in attribute_heads] + [h == "MAX" for h in bounds] for pair in pairs],
            dtype=torch.bool,
            device=self.device,
        )
        self._goal_reward = torch.where(self.goal_membership, r_max, r_min).float()
        self._step_reward = torch.full((self.num_heads,), step_reward, device=self.device)
        if self.free_cells.numel() <= self.num_goals:
            raise ValueError(
                f"layout has {self.free_cells.numel()} free cells, need more than "
                f"{self.num_goals} (objects + agent)"
            )
        self.fixed_objects = self._check_positions(object_positions)
        fixed = self.fixed_objects if self.fixed_objects is not None else self.free_cells[:0]
        self._fixed_mask = (self.free_cells[:, None] == fixed).any(1)
        cells = self.height * self.width
        attributes = len(self.colours) + len(self.shapes)
        if observation == "planes":
            self.obs_shape, self.obs_dtype = (2 + attributes, self.height, self.width), torch.uint8
        else:
            self.obs_shape, self.obs_dtype = (1 + 4 * self.num_goals,), torch.long
        colour = torch.tensor([self.colours.index(c) for c, _ in pairs], device=self.device)
        shape = torch.tensor([self.shapes.index(s) for _, s in pairs], device=self.device)
        self._attribute_planes = torch.stack([colour, len(self.colours) + shape], 1).flatten()
        offsets = (2 * self.height - 1) * (2 * self.width - 1)
        self.num_features = (1 + attributes) * cells + attributes * offsets
        self._absolute_shift = (1 + self._attribute_planes) * cells
        # an object's offset from the agent is key(object) - key(agent) + a constant, with
        # key = row * (2W - 1) + col: two look-ups instead of both cells' rows and columns
        row = torch.div(torch.arange(cells), self.width, rounding_mode="floor")
        self._cell_key = (row * (2 * self.width - 1) + torch.arange(cells) % self.width).to(
            self.device
        )
        centre = (self.height - 1) * (2 * self.width - 1) + self.width - 1
        self._relative_shift = centre + (1 + attributes) * cells + self._attribute_planes * offsets
        if observation == "indices":  # object g's absolute then relative colour and shape columns
            first = 1 + 2 * torch.arange(self.num_goals, device=self.device)[:, None]
            pair = first + torch.arange(2, device=self.device)
            self.goal_slots = torch.cat([pair, pair + 2 * self.num_goals], 1)
        self._wall_plane = self.walls.flatten().to(torch.uint8)
        self._free_ordinals = torch.arange(self.free_cells.numel(), device=self.device)
        self._ordinal_keys = index_keys(self._free_ordinals)
        self._next_cell = move_table(self.walls)
        self._object_rgb = colours_rgb([c for c, _ in pairs])
        self._object_glyph = shape_glyphs([s for _, s in pairs])
        self.reset(0)

    def _resolve_heads(self, heads: Sequence[str] | None) -> list[str]:
        """Head names: every colour then every shape by default, else validated attribute values."""
        valid = self.colours + self.shapes
        if heads is None:
            return valid
        heads = [heads] if isinstance(heads, str) else list(heads)
        for head in heads:
            if head not in valid:
                raise ValueError(f"unknown head {head!r}; valid attribute values: {valid}")
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be a non-empty list without repeats, got {heads}")
        return heads

    def _check_positions(self, positions: Sequence[Sequence[int]] | None) -> Tensor | None:
        """Flat cells [M] of a fixed object layout, validated; None keeps random layouts."""
        if positions is None:
            return None
        if len(positions) != self.num_goals:
            raise ValueError(
                f"object_positions needs {self.num_goals} [row, col] pairs "
                f"(one per object {self.goal_names}), got {len(positions)}"
            )
        cells = []
        for name, pos in zip(self.goal_names, positions, strict=True):
            if len(pos) != 2:
                raise ValueError(f"position of {name} must be [row, col], got {pos!r}")
            row, col = (int(v) for v in pos)
            if not (0 <= row < self.height and 0 <= col < self.width):
                raise ValueError(
                    f"position of {name} {pos!r} is outside the {self.height}x{self.width} grid"
                )
            if self.walls[row, col]:
                raise ValueError(f"position of {name} {pos!r} is a wall")
            cells.append(row * self.width + col)
        if len(set(cells)) != len(cells):
            raise ValueError(f"object positions must be distinct, got {list(positions)}")
        return torch.tensor(cells, dtype=torch.long, device=self.device)

    def sample_layout(self, seeds: Tensor, episodes: Tensor) -> tuple[Tensor, Tensor]:
        """Start cell [B] and object cells [B, M] of episode `episodes` of the slots `seeds`."""
        # hash * F + j makes every key distinct, so the chosen cells never hinge on tie-breaking.
        ordinals = self._free_ordinals
        keys = hash_keyed(seeds, episodes, self._ordinal_keys) * ordinals.numel() + ordinals
        if self.fixed_objects is None:
            first = torch.topk(keys, self.num_goals + 1, dim=1, largest=False).indices
            return self.free_cells[first[:, -1]], self.free_cells[first[:, :-1]]
        objects = self.fixed_objects.repeat(seeds.shape[0], 1)
        start = keys.masked_fill(self._fixed_mask, torch.iinfo(torch.long).max).argmin(1)
        return self.free_cells[start], objects

    def standable(self, objects: Tensor) -> Tensor:
        """Cells [L, S] the agent may occupy in layouts objects [L, M]: no wall, no object."""
        free = ~self.walls.flatten().repeat(objects.shape[0], 1)
        return free.scatter(1, objects, False)

    def observe(self, agent: Tensor, objects: Tensor) -> Tensor:
        """The observation of each state, as attribute planes or as the indices of their ones.

        planes: uint8 [B, C, H, W] = walls, agent, one plane per colour, one per shape (object
        (c, s) sits where planes c and s are both set), like a camera image that shows colours
        and shapes rather than identities. indices: long [B, 1 + 4M] = positions of the ones of
        a multi-hot vector, so a sum of weight rows equals a dense first layer: the agent cell,
        each object's cell in its colour and shape planes (the non-constant ones of the planes),
        and its offset from the agent in an egocentric colour and shape plane, which lets the
        network generalise across random layouts.
        """
        batch, cells = agent.shape[0], self.height * self.width
        objects2 = objects.repeat_interleave(2, dim=1)
        if self.observation == "indices":
            key = self._cell_key
            relative = key[objects2] - key[agent][:, None] + self._relative_shift
            return torch.cat([agent[:, None], objects2 + self._absolute_shift, relative], 1)
        planes = torch.zeros(
            batch, self.obs_shape[0] * cells, dtype=torch.uint8, device=self.device
        )
        planes[:, :cells] = self._wall_plane
        planes[:, cells:].scatter_(1, agent[:, None], 1)
        planes.scatter_(1, objects2 + (2 + self._attribute_planes) * cells, 1)
        return planes.view(batch, *self.obs_shape)

    def transition(
        self, agent: Tensor, objects: Tensor, actions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pure dynamics: (next agent [B], reward [B, K], terminated [B], goal [B] or -1)."""
        next_agent = self._next_cell[agent, actions]
        hit = objects == next_agent[:, None]
        terminated = hit.any(1)
        goal = torch.where(terminated, hit.long().argmax(1), -1)
        reward = torch.where(
            terminated[:, None], self._goal_reward[goal.clamp(min=0)], self._step_reward
        )
        return next_agent, reward, terminated, goal

    def render_rgb(self, index: int = 0) -> np.ndarray:
        """uint8 RGB image [H*16, W*16, 3] of slot `index`."""
        return draw_grid(
            self.walls.cpu().numpy(),
            int(self.agent[index]),
            self.objects[index].tolist(),
            self._object_rgb,
            self._object_glyph,
        )


@dataclasses.dataclass
class ObjectRoomsConfig(GoalGridConfig):
    """object_rooms: objects with a colour and a shape; one head per colour and per shape."""

    name: str = doc("object_rooms", "This world.")

    layout: str = doc("four_rooms", "Map: four_rooms (13x13) or open5 (5x5).")
    colours: list[str] = doc(["beige", "blue", "purple"], "Colours of the objects.")
    shapes: list[str] = doc(["circle", "square"], "Shapes of the objects.")
    heads: list[str] = doc(
        [], "Base rewards, one per attribute value; empty = every colour then every shape."
    )
    object_positions: list[list[int]] | None = doc(
        None,
        "[row, col] per object in colour-major order; null = random placement every episode.",
        ge=0,
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        """Yield (field, problem) for rules that involve several fields."""
        for name in ("colours", "shapes", "heads"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                yield name, f"duplicate values in {values!r}"
        shared = sorted(set(self.colours) & set(self.shapes))
        if shared:
            yield "shapes", f"names shared with colours: {shared}"
        attributes = [*self.colours, *self.shapes]
        for head in self.heads:
            if head not in attributes:
                yield "heads", f"unknown head {head!r}; heads are colours or shapes: {attributes}"
        if self.object_positions is not None:
            objects = len(self.colours) * len(self.shapes)
            count = len(self.object_positions)
            if count != objects:
                yield "object_positions", f"expected {objects} [row, col] pairs, got {count}"
            yield from self._position_problems()
        yield from super().problems()

    def _position_problems(self) -> Iterator[tuple[str, str]]:
        """Each fixed position must be a [row, col] of a free cell of the layout, used once."""
        try:
            walls = parse_layout(self.layout)
        except ValueError:
            return  # the layout itself is reported by the world
        height, width = walls.shape
        seen: dict[tuple[int, ...], int] = {}
        for i, position in enumerate(self.object_positions):
            key = f"object_positions[{i}]"
            if len(position) != 2:
                yield key, f"expected [row, col], got {position!r}"
            elif not (position[0] < height and position[1] < width):
                yield key, f"{position} is outside the {height}x{width} layout {self.layout!r}"
            elif walls[position[0], position[1]]:
                yield key, f"{position} is a wall of layout {self.layout!r}"
            elif tuple(position) in seen:
                yield key, f"{position} is also object_positions[{seen[tuple(position)]}]"
            else:
                seen[tuple(position)] = i


def make_object_rooms(section: ObjectRoomsConfig, num_envs: int, device: str) -> ObjectRooms:
    """The object-rooms world of a config section."""
    return ObjectRooms(
        num_envs=num_envs,
        layout=section.layout,
        colours=tuple(section.colours),
        shapes=tuple(section.shapes),
        heads=list(section.heads) or None,
        object_positions=section.object_positions,
        max_steps=section.max_steps,
        r_max=section.r_max,
        r_min=section.r_min,
        step_reward=section.step_reward,
        bound_heads=section.bound_heads,
        observation=section.observation,
        device=device,
    )


register_world("object_rooms", ObjectRoomsConfig, make_object_rooms, default=True)
