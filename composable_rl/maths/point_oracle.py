"""Exact optima of a point with bounded velocity among goal discs (the point_goals world) and
among resource discs that pay on every step inside (the point_foraging world).

A point moves x' = x + dt * u with |u| <= speed, so one step covers at most `step_length` =
speed * dt, and an episode ends on the first step whose end lies in a goal disc. Reaching goal
g from x therefore takes at least ceil(d / step_length) steps, d the distance from x to the
disc's edge; moving straight at full speed takes exactly that many whenever the straight
segment misses every other disc (each step's end then lies outside them) and a step is no
longer than a disc's diameter (it cannot jump over the disc). Optimal returns built on these
counts are exact where the best goal's path is clear, and upper bounds elsewhere; `exact` says
which. Temporal tasks chain such legs (`product_steps`); a leg whose straight path is blocked
gets an upper bound from breadth-first search over a fine grid (`grid_plans`), so the optimum
of a task lies between the chained lower bounds and the chained plans, exact where they meet.
Walls (axis-aligned segments that moves slide along, `slide`) lengthen paths: the lower
bound follows the shortest path round them (`wall_distances`, a visibility graph over their
ends), the plans go round them on the grid (`grid_plans` with `walls`).
Where discs pay every step spent inside them instead of ending the episode, the best
return is to reach the nearest paying disc as soon as possible and stay (`staying_returns`).
Pure tensor functions, float64 where precision matters.
"""

from __future__ import annotations

import functools
import math
from math import inf
from typing import NamedTuple

import torch
from torch import Tensor


def edge_distances(position: Tensor, centres: Tensor, radius: float) -> Tensor:
    """Distance [N, G] from positions [N, 2] to the edges of the discs centres [N, G, 2] (0
    inside a disc)."""
    gap = (centres.double() - position.double()[:, None]).norm(dim=-1)
    return (gap - radius).clamp(min=0.0)


def goal_steps(
    position: Tensor,
    centres: Tensor,
    radius: float,
    step_length: float,
    walls: Tensor | None = None,
) -> Tensor:
    """Fewest steps [N, G] from each position to each disc: ceil(distance / step_length), the
    distance to the disc's edge, around `walls` where given (`wall_distances`); a disc that
    no path reaches gets a count beyond any episode (2^40)."""
    distance = wall_distances(position, centres, radius, walls)
    return torch.ceil(distance / step_length).clamp(1, 2**40).long()


def wall_frames(walls: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each axis-aligned wall [W, 4] ([x1, y1, x2, y2]) as (the axis [W] it is fixed on: 0 for
    a vertical wall, 1 for a horizontal one; its coordinate on that axis; its lower and upper
    ends on the other), float64."""
    w = walls.double()
    axis = (w[:, 0] != w[:, 2]).long()
    rows = torch.arange(len(w), device=w.device)
    ends = torch.stack([w[rows, 1 - axis], w[rows, 3 - axis]], 1)
    return axis, w[rows, axis], ends.amin(1), ends.amax(1)


def wall_hits(start: Tensor, end: Tensor, walls: Tensor, proper: bool = False) -> Tensor:
    """Whether [...] the segment from start [..., 2] to end [..., 2] meets a wall of `walls`
    [W, 4] (axis-aligned segments), ends included: the moves the world does not make whole.
    With `proper`, only segments that cross a wall's inside from one side to the other: the
    moves of the shortest paths that lower bounds measure, which may graze a wall's end or run
    along it."""
    return wall_contacts(start, end, walls, proper).any(-1)


def slide(start: Tensor, end: Tensor, walls: Tensor) -> Tensor:
    """Where moves from start [N, 2] towards end [N, 2] stop among `walls`: at the end where
    the segment meets no wall; else along a wall it meets (the move's component along that
    wall alone) where that meets none; else at the start. Every step still covers at most its
    own length, so steps counted around walls stay a lower bound."""
    contacts = wall_contacts(start, end, walls)  # [N, W]
    axis = wall_frames(walls.to(start.device))[0]
    fixed = axis[contacts.double().argmax(-1)]  # the coordinate the wall met holds
    along = torch.where(fixed[:, None] == torch.arange(2, device=start.device), start, end)
    stop = torch.where(wall_hits(start, along, walls)[:, None], start, along)
    return torch.where(contacts.any(-1)[:, None], stop, end)


def wall_contacts(start: Tensor, end: Tensor, walls: Tensor, proper: bool = False) -> Tensor:
    """`wall_hits` wall by wall: [..., W]."""
    if walls.shape[0] == 0:
        return torch.zeros((*start.shape[:-1], 0), dtype=torch.bool, device=start.device)
    axis, level, low, high = wall_frames(walls.to(start.device))
    p, q = start.double()[..., None, :], end.double()[..., None, :]  # [..., 1, 2]
    before = p[..., 0].where(axis == 0, p[..., 1]) - level  # [..., W], signed gap to the wall
    after = q[..., 0].where(axis == 0, q[..., 1]) - level
    pv, qv = p[..., 1].where(axis == 0, p[..., 0]), q[..., 1].where(axis == 0, q[..., 0])
    moved = before != after
    t = before / torch.where(moved, before - after, 1.0)
    at = pv + t * (qv - pv)  # where the segment meets the wall's line
    if proper:
        return ((before * after) < 0) & (at > low) & (at < high)
    across = moved & (before * after <= 0) & (at >= low) & (at <= high)
    overlap = (torch.maximum(pv, qv) >= low) & (torch.minimum(pv, qv) <= high)
    return across | ((before == 0) & (after == 0) & overlap)


def wall_gaps(points: Tensor, walls: Tensor) -> Tensor:
    """Distance [..., W] (float64) from points [..., 2] to each wall of `walls` [W, 4]."""
    axis, level, low, high = wall_frames(walls.to(points.device))
    p = points.double()[..., None, :]
    across = (p[..., 0].where(axis == 0, p[..., 1]) - level).abs()
    v = p[..., 1].where(axis == 0, p[..., 0])
    along = (low - v).clamp(min=0) + (v - high).clamp(min=0)
    return torch.hypot(across, along)


def wall_distances(
    position: Tensor, centres: Tensor, radius: float, walls: Tensor | None = None
) -> Tensor:
    """Length [N, G] (float64, inf: none) of the shortest path from each position [N, 2] to the
    edge of each disc (centres [N, G, 2]) around `walls` [W, 4], other discs ignored: through
    the walls' ends (a visibility graph, shortest paths by Floyd-Warshall), each leg a proper
    move of `wall_hits`, the last straight at the disc's nearest point. No walk reaches a disc
    in fewer than ceil(length / step_length) steps. The edge distance without walls."""
    direct = edge_distances(position, centres, radius)
    if walls is None or walls.shape[0] == 0:
        return direct
    corners = walls.to(position.device).double().reshape(-1, 2)  # [V, 2]
    v = len(corners)

    def legs(start: Tensor, end: Tensor) -> Tensor:
        length = (end - start).norm(dim=-1)
        return length.masked_fill(wall_hits(start, end, walls, proper=True), inf)

    graph = legs(corners[:, None].expand(v, v, 2), corners[None].expand(v, v, 2))
    for k in range(v):
        graph = torch.minimum(graph, graph[:, k : k + 1] + graph[k : k + 1])
    c = centres.double()
    n, goals = c.shape[:2]
    at_corners = corners[None, :, None].expand(n, v, goals, 2)
    ends = nearest_points(at_corners, c[:, None], radius)  # [N, V, G, 2]
    last = legs(at_corners, ends)  # [N, V, G]: the corner's last leg to each disc
    onward = (graph[None, :, :, None] + last[:, None]).amin(2)  # [N, V, G], via other corners
    first = legs(position.double()[:, None].expand(n, v, 2), corners[None].expand(n, v, 2))
    nearest = nearest_points(position[:, None], c, radius)
    blocked = wall_hits(position[:, None].expand_as(nearest), nearest, walls, proper=True)
    return torch.minimum(direct.masked_fill(blocked, inf), (first[..., None] + onward).amin(1))


def nearest_points(position: Tensor, centres: Tensor, radius: float) -> Tensor:
    """The point [..., 2] (float64) of each disc (centres [..., 2]) nearest each position
    [..., 2] (broadcast together)."""
    c = centres.double()
    offset = c - position.double()
    gap = offset.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return c - gap.clamp(max=radius) * offset / gap


def clear_paths(
    position: Tensor, centres: Tensor, radius: float, exclude: Tensor | None = None
) -> Tensor:
    """Whether [N, G] the straight segment from each position to the nearest point of disc g
    stays strictly outside every other disc (but the discs `exclude` [N, G] marks, e.g. the one
    a path starts in)."""
    p = position.double()[:, None, None]  # [N, 1, 1, 2]
    c = centres.double()
    end = nearest_points(position[:, None], centres, radius)  # [N, G, 2]
    seg = end[:, :, None] - p  # [N, G, 1, 2]
    other = c[:, None] - p  # [N, 1, G, 2]
    t = ((other * seg).sum(-1) / (seg * seg).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
    closest = (other - t[..., None] * seg).norm(dim=-1)  # [N, G (target), G (other)]
    others = ~torch.eye(centres.shape[1], dtype=torch.bool, device=centres.device)
    if exclude is not None:
        others = others & ~exclude[:, None, :]
    return ((closest > radius) | ~others).all(-1)


def arrival_values(
    steps: Tensor,
    goal_rewards: Tensor,
    step_reward: float,
    max_steps: int,
    gamma: float = 1.0,
) -> Tensor:
    """Best return [N, G] of ending the episode at goal g (goal_rewards [G] or [N, G]) no sooner
    than `steps` [N, G] and within `max_steps`: arrive as soon as possible when steps cost
    (step_reward <= 0), at the last step otherwise; -inf where g cannot be reached in time.
    The reward of a step is `step_reward`, of the arriving step the goal's reward; discounted
    by `gamma` (1: the plain sum)."""
    arrive = steps if step_reward <= 0 else torch.full_like(steps, max_steps)
    before = _discounted_count(arrive - 1, gamma)
    value = step_reward * before + gamma ** (arrive - 1).double() * goal_rewards.double()
    return torch.where(steps <= max_steps, value, -torch.inf)


def _discounted_count(n: Tensor, gamma: float) -> Tensor:
    """sum_{t < n} gamma^t, float64 [like n]."""
    n = n.double()
    return n if gamma == 1.0 else (1.0 - gamma**n) / (1.0 - gamma)


def optimal_returns(
    position: Tensor,
    centres: Tensor,
    radius: float,
    step_length: float,
    goal_rewards: Tensor,
    step_reward: float,
    max_steps: int,
    gamma: float = 1.0,
    walls: Tensor | None = None,
    plans: GridPlans | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Optimal return [N] from each position of the task paying goal_rewards[g] at goal g and
    `step_reward` on other steps, truncated after `max_steps`, with steps counted around
    `walls` [W, 4]; the goal [N] it ends at (-1: none, standing still until the end is best);
    and whether [N] the value is exact: a plan reaches a best goal in as few steps, straight
    (clear of other discs and of walls) or, given the `plans` of the layout every row shares
    (`grid_plans`), around what is in the way. Otherwise the value is an upper bound."""
    steps = goal_steps(position, centres, radius, step_length, walls)
    arrive = arrival_values(steps, goal_rewards, step_reward, max_steps, gamma)
    stay = step_reward * _discounted_count(torch.tensor(max_steps), gamma)
    best, goal = arrive.max(1)
    goal = torch.where(best > stay, goal, -1)
    upper = steps.double().masked_fill(~clear_legs(position, centres, radius, walls), inf)
    if plans is not None:
        upper = torch.minimum(upper, planned_legs(position, centres[0], radius, step_length, plans))
    attained = (arrive == best[:, None]) & (upper == steps)  # a plan meets the best bound
    goal = torch.where(attained.any(1) & (goal >= 0), attained.double().argmax(1), goal)
    exact = (goal < 0) | attained.any(1)
    return torch.maximum(best, stay.to(best)), goal, exact


def clear_legs(
    position: Tensor,
    centres: Tensor,
    radius: float,
    walls: Tensor | None = None,
    exclude: Tensor | None = None,
) -> Tensor:
    """Whether [N, G] going straight from each position [N, 2] into each disc (centres
    [N, G, 2]) is clear of the other discs (`clear_paths`, but those `exclude` marks) and of
    every wall: where it is, `goal_steps` are the steps of a plan."""
    clear = clear_paths(position, centres, radius, exclude)
    if walls is not None:
        ends = nearest_points(position[:, None], centres, radius)
        clear &= ~wall_hits(position[:, None].expand_as(ends), ends, walls)
    return clear


def one_step(
    position: Tensor, centres: Tensor, radius: float, step_length: float, walls: Tensor
) -> Tensor:
    """Whether [..., G] one straight step from each position [..., 2] enters disc g (centres
    [G, 2]) without meeting a wall of `walls` [W, 4]."""
    ends = nearest_points(position[..., None, :], centres, radius)  # [..., G, 2]
    gap = (centres.double() - position.double()[..., None, :]).norm(dim=-1)
    into = ~wall_hits(position[..., None, :].expand_as(ends), ends, walls)
    return (gap <= radius + step_length) & into


def straight_actions(position: Tensor, target: Tensor, speed: float) -> Tensor:
    """Velocities [N, 2] float32 at full `speed` from positions [N, 2] towards target points
    [N, 2] (zero where they coincide): the optimal policy of a clear path."""
    offset = (target - position).float()
    gap = offset.norm(dim=-1, keepdim=True)
    return torch.where(gap > 0, speed * offset / gap.clamp(min=1e-12), 0.0)


def staying_returns(
    position: Tensor,
    centres: Tensor,
    radius: float,
    step_length: float,
    membership: Tensor,
    max_steps: int,
) -> Tensor:
    """Best return [N, K] within `max_steps` of heads that pay 1 on every step ending inside
    one of their discs (membership [G, K]) when no disc ends an episode: reach the nearest disc
    of head k, n steps away (`goal_steps`), and stay there, max(0, max_steps - n + 1). Exact in
    a convex room: no step ends nearer a disc than one step closer."""
    steps = goal_steps(position, centres, radius, step_length)  # [N, G]
    absent = torch.full_like(steps, max_steps + 1)
    first = torch.where(membership[None], steps[..., None], absent[..., None]).amin(1)
    return (max_steps + 1 - first).clamp(min=0).double()


def _disc_rows(reach: float, resolution: float) -> list[tuple[int, int]]:
    """(row offset, half width) of every row of the grid offsets within `reach` of the origin,
    both in cells of side `resolution`."""
    span = int(reach / resolution)
    rows = []
    for dy in range(-span, span + 1):
        room = reach**2 - (dy * resolution) ** 2
        if room >= 0:
            rows.append((dy, int(math.sqrt(room) / resolution)))
    return rows


def _dilate(mask: Tensor, rows: list[tuple[int, int]]) -> Tensor:
    """The cells [S, Y, X] within the offsets `rows` (see `_disc_rows`) of a cell of `mask`:
    each row's horizontal window from running sums, shifted by its row offset."""
    width = mask.shape[-1]
    sums = torch.nn.functional.pad(mask.to(torch.int32).cumsum(-1), (1, 0))
    cols = torch.arange(width, device=mask.device)
    window = {
        w: sums[..., (cols + w + 1).clamp(max=width)] > sums[..., (cols - w).clamp(min=0)]
        for w in {w for _, w in rows}
    }
    out = torch.zeros_like(mask)
    for dy, w in rows:
        if dy >= 0:
            out[:, : out.shape[1] - dy] |= window[w][:, dy:]
        else:
            out[:, -dy:] |= window[w][:, :dy]
    return out


class GridPlans(NamedTuple):
    """Plans over a grid (`grid_plans`): steps [G, Y, X] (float64, inf: never) from each grid
    point into each disc, the grid's points [Y, X, 2] (inf where a point lies in a disc), its
    spacing, and the walls [W, 4] that moves go around."""

    steps: Tensor
    points: Tensor
    resolution: float
    walls: Tensor


def grid_plans(
    centres: Tensor,
    radius: float,
    step_length: float,
    extent: Tensor,
    resolution: float,
    walls: Tensor | None = None,
) -> GridPlans:
    """Plans from each point of a grid `resolution` apart over the room [0, extent] into each
    disc g, every step a move of at most `step_length` that meets no wall and, but the last,
    ends on a grid point outside every disc (breadth-first backwards from the discs). Cached
    per layout."""
    walls = torch.zeros(0, 4) if walls is None else walls
    key = (
        tuple(centres.flatten().tolist()),
        radius,
        step_length,
        tuple(extent.tolist()),
        resolution,
        tuple(walls.flatten().tolist()),
    )
    return _grid_plans(*key, str(centres.device))


@functools.lru_cache(maxsize=4)
def _grid_plans(
    centres: tuple[float, ...],
    radius: float,
    step_length: float,
    extent: tuple[float, ...],
    resolution: float,
    walls: tuple[float, ...],
    device: str,
) -> GridPlans:
    """`grid_plans` of a layout given as plain numbers (hashable, so that it caches)."""
    double = dict(dtype=torch.float64, device=device)
    centres = torch.tensor(centres, **double).view(-1, 2)
    barriers = torch.tensor(walls, **double).view(-1, 4)
    axes = [(torch.arange(int(side / resolution), **double) + 0.5) * resolution for side in extent]
    ys, xs = torch.meshgrid(axes[1], axes[0], indexing="ij")
    points = torch.stack([xs, ys], -1)  # [Y, X, 2]
    free = ((points[:, :, None] - centres).norm(dim=-1) > radius).all(-1)  # [Y, X]
    reach = one_step(points, centres, radius, step_length, barriers).permute(2, 0, 1) & free
    rows = _disc_rows(step_length * (1 - 1e-9), resolution)
    cells, targets, allowed = _moves_by_walls(points, rows, step_length, barriers)
    steps = torch.where(reach, 1.0, inf).to(**double)
    for k in range(2, reach[0].numel() + 2):
        grown = _dilate(reach, rows)
        if len(cells):  # near a wall, only the moves that meet none
            flat = reach.flatten(1)[:, targets] & allowed  # [G, C, O]
            grown.view(len(grown), -1)[:, cells] = flat.any(-1)
        grown &= free
        if torch.equal(grown, reach):
            break
        steps = torch.where(grown & ~reach, float(k), steps)
        reach = grown
    return GridPlans(steps, torch.where(free[..., None], points, inf), resolution, barriers)


def _moves_by_walls(
    points: Tensor, rows: list[tuple[int, int]], step_length: float, walls: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The grid's cells [C] within a step of a wall, the flat index [C, O] of each move's end
    among the offsets of `rows` (see `_disc_rows`), and whether [C, O] that move stays on the
    grid and meets no wall."""
    height, width = points.shape[:2]
    if walls.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        return empty, empty[:, None], empty[:, None].bool()
    cells = (wall_gaps(points, walls) <= step_length).any(-1).flatten().nonzero()[:, 0]
    offsets = torch.tensor(
        [(dy, dx) for dy, w in rows for dx in range(-w, w + 1)], device=points.device
    )
    y = cells[:, None] // width + offsets[:, 0]
    x = cells[:, None] % width + offsets[:, 1]
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    targets = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).long()
    flat = points.view(-1, 2)
    starts = flat[cells][:, None].expand(-1, len(offsets), -1)
    return cells, targets, inside & ~wall_hits(starts, flat[targets], walls)


def planned_legs(
    sources: Tensor, centres: Tensor, radius: float, step_length: float, plans: GridPlans
) -> Tensor:
    """Steps [S, G] of a plan from each source [S, 2] into each disc (float64, inf: none): one
    straight step if the disc is that near and no wall is in the way, else a first step onto a
    grid point of `plans` (see `grid_plans`) within reach and that point's plan."""
    steps, points, resolution, walls = plans
    height, width = points.shape[:2]
    span = math.ceil(step_length / resolution) + 1
    window = torch.arange(-span, span + 1, device=sources.device)
    cell = (sources.double() / resolution).floor().long()  # [S, 2] (x, y)
    x = (cell[:, 0, None, None] + window[None, :, None]).clamp(0, width - 1)  # [S, O', 1]
    y = (cell[:, 1, None, None] + window[None, None, :]).clamp(0, height - 1)  # [S, 1, O']
    flat = (y * width + x).flatten(1)  # [S, O], grid points near each source
    ends = points.view(-1, 2)[flat]  # [S, O, 2]
    near = (ends - sources.double()[:, None]).norm(dim=-1) <= step_length
    near &= ~wall_hits(sources[:, None].expand_as(ends), ends.nan_to_num(posinf=0.0), walls)
    onward = torch.where(near[:, None], steps.flatten(1)[:, flat].transpose(0, 1), inf)
    one = one_step(sources, centres, radius, step_length, walls)
    return torch.where(one, 1.0, 1.0 + onward.amin(-1))


def region_legs(
    start: Tensor,
    centres: Tensor,
    radius: float,
    step_length: float,
    extent: Tensor,
    resolution: float,
) -> tuple[Tensor, Tensor]:
    """Lower and upper bounds [N + G, G] (float64, inf: no plan) on the steps of the legs
    between regions (discs), when entering a region puts the point at its centre, from each
    start [N, 2] and then from each disc's centre (staying in a disc takes one step). A leg
    takes at least ceil(edge distance / step_length) steps and exactly that many when it is
    clear (see `clear_paths`); the upper bound of a leg that is not is the plan of
    `grid_plans` and `planned_legs` (inf: none)."""
    goals, n = centres.shape[0], start.shape[0]
    sources = torch.cat([start, centres])
    inside = torch.zeros(n + goals, goals, dtype=torch.bool, device=centres.device)
    inside[n:] = torch.eye(goals, dtype=torch.bool, device=centres.device)
    every = centres.expand(n + goals, -1, -1)
    steps = goal_steps(sources, every, radius, step_length).double()
    upper = steps.masked_fill(~clear_legs(sources, every, radius, exclude=inside), inf)
    detour = (upper.isinf() & ~inside).any(1)
    if detour.any():
        plans = grid_plans(centres, radius, step_length, extent, resolution)
        found = planned_legs(sources[detour], centres, radius, step_length, plans)
        upper[detour] = torch.minimum(upper[detour], found)
    return steps.masked_fill(inside, 1.0), upper.masked_fill(inside, 1.0)


def product_steps(
    start: Tensor,
    centres: Tensor,
    goal_labels: Tensor,
    radius: float,
    step_length: float,
    extent: Tensor,
    table: Tensor,
    accepting: Tensor,
    rejecting: Tensor,
    initial: int,
    resolution: float = 0.025,
) -> tuple[Tensor, Tensor]:
    """Bounds [N] on the fewest steps from each start [N, 2] in the room [0, extent] to an
    accepting state of a reward machine (table [U, L] of next states by label; label 0 =
    none), where entering region g (a disc of `centres` [G, 2]) reads label goal_labels[g] and
    puts the point at g's centre: shortest paths over (region, machine state) with the lower
    and then the upper bounds of `region_legs` (grids of `resolution`). The lower bound holds
    for every policy, the upper is the length of a plan; where they meet the optimum is exact.
    -1 where no plan reaches acceptance without a rejecting state. Steps outside every region
    read label 0, so the machine must stay put on it."""
    moving = ~(accepting | rejecting)
    still = table[:, 0] == torch.arange(len(table), device=table.device)
    if not bool((still | ~moving).all()):
        raise ValueError("the machine changes state on steps without a label; no region oracle")
    n = start.shape[0]
    bounds = region_legs(start, centres, radius, step_length, extent, resolution)
    after = table[:, goal_labels].T  # [G, U]: the state after entering region g in state u
    plans = []
    for legs in bounds:
        to_go = torch.full(after.shape, inf, dtype=torch.float64, device=centres.device)
        for _ in range(to_go.numel() + 1):
            arrive = torch.where(accepting[after], 0.0, to_go.gather(1, after))
            arrive = arrive.masked_fill(rejecting[after], inf)  # [G (region entered), U]
            new = (legs[n:, :, None] + arrive[None]).amin(1)  # [G (region left), U]
            if torch.equal(new, to_go):
                break
            to_go = new
        steps = (legs[:n] + arrive[:, initial]).amin(1)
        plans.append(torch.where(steps.isfinite(), steps, -1).long())
    return plans[0], plans[1]
