"""Exact tabular model of MO-Gymnasium's `four-room-v0`, built from the env's own map and rules.

The env's state is (agent cell, which items are collected). Moving into a wall or off the grid
leaves it unchanged with zero reward; moving onto an uncollected item collects it and pays one on
its shape's head; moving onto the goal pays one on every head and terminates.

A model may track only the items that pay on some chosen heads: collecting an item never changes
movement, so dropping the others is exact for those heads' rewards (an untracked item cell is then
an empty cell). A tabular state is `cell * 2**tracked + mask`, cell = row * width + col over the
whole grid, bit j of mask set once the j-th tracked item (in the env's `shape_ids` order) is
collected. With all heads this is the env's full state: 169 cells * 2**12 = 692,224 states.

States no live episode can occupy are invalid (self-loop, zero reward, never terminal): walls, the
goal cell (episodes end on entering it) and a tracked item's cell while the item is uncollected.
"""

from collections.abc import Sequence

import gymnasium
import numpy as np
import torch
from torch import Tensor

from composable_rl.maths.oracle import TabularMDP, finite_horizon_return


def _moves(env: gymnasium.Env) -> Tensor:
    """(row, col) displacement [A, 2] of each action, indexed by the env's own action constants."""
    base = env.unwrapped
    moves = torch.zeros(base.action_space.n, 2, dtype=torch.long)
    for action, delta in (
        (base.LEFT, (0, -1)),
        (base.UP, (-1, 0)),
        (base.RIGHT, (0, 1)),
        (base.DOWN, (1, 0)),
    ):
        moves[action] = torch.tensor(delta)
    return moves


def _tracked(env: gymnasium.Env, heads: Sequence[int]) -> dict[tuple[int, int], int]:
    """Bit index of each tracked item by (row, col): the items whose shape pays on `heads`."""
    base = env.unwrapped
    cells = sorted(base.shape_ids, key=base.shape_ids.__getitem__)
    paying = [cell for cell in cells if base.all_shapes[base.maze[cell]] in heads]
    return {cell: bit for bit, cell in enumerate(paying)}


def four_room_mdp(env: gymnasium.Env, heads: Sequence[int] | None = None) -> tuple[TabularMDP, int]:
    """The deterministic model (one layout) for `heads` (default all) and the start state's index.

    reward is [1, S, A, len(heads)], in the order given. Built by broadcasting over
    [cell, mask, action], so no Python loop runs over states. The env draws its start uniformly
    from the maze's "_" cells; the registered maze has exactly one, so the start is fixed and a
    maze with several is refused.
    """
    base = env.unwrapped
    if len(base.initial) != 1:
        raise ValueError(f"expected one start cell, the maze has {len(base.initial)}")
    heads = list(range(base.reward_dim)) if heads is None else list(heads)
    height, width = base.height, base.width
    tracked = _tracked(env, heads)
    cells, masks = height * width, 1 << len(tracked)

    wall = torch.zeros(cells, dtype=torch.bool)
    for row, col in base.occupied:
        wall[row * width + col] = True
    goal_cell = base.goal[0] * width + base.goal[1]
    bit_of_cell = torch.full((cells,), -1, dtype=torch.long)
    head_of_cell = torch.zeros(cells, dtype=torch.long)
    for (row, col), bit in tracked.items():
        bit_of_cell[row * width + col] = bit
        head_of_cell[row * width + col] = heads.index(base.all_shapes[base.maze[row, col]])

    # Where each action leads from each cell [cells, A]; blocked moves stay put.
    rows, cols = torch.arange(cells) // width, torch.arange(cells) % width
    moves = _moves(env)
    target_row, target_col = rows[:, None] + moves[:, 0], cols[:, None] + moves[:, 1]
    inside = (target_row >= 0) & (target_row < height) & (target_col >= 0) & (target_col < width)
    target = (target_row * width + target_col).clamp(0, cells - 1)
    moved = inside & ~wall[target]
    next_cell = torch.where(moved, target, torch.arange(cells)[:, None])
    reach_goal = moved & (next_cell == goal_cell)

    # Item collection over [cells, masks, A].
    mask = torch.arange(masks)[None, :, None]
    bit = bit_of_cell[next_cell][:, None, :]
    flag = torch.where(bit >= 0, 1 << bit.clamp(min=0), 0)
    collect = moved[:, None, :] & (bit >= 0) & (mask & flag == 0)
    next_state = next_cell[:, None, :] * masks + (mask | torch.where(collect, flag, 0))

    paid = torch.nn.functional.one_hot(head_of_cell[next_cell], len(heads)).double()[:, None]
    reward = torch.where(collect[..., None], paid, 0.0)
    reward = torch.where(reach_goal[:, None, :, None], 1.0, reward)
    terminal = reach_goal[:, None, :].expand(cells, masks, -1)

    own_bit = bit_of_cell[:, None]
    uncollected = (own_bit >= 0) & (mask[..., 0] & (1 << own_bit.clamp(min=0)) == 0)
    valid = ~wall[:, None] & (torch.arange(cells) != goal_cell)[:, None] & ~uncollected
    valid = valid.flatten()

    states, actions = cells * masks, moves.shape[0]
    stay = torch.arange(states)[:, None].expand(-1, actions)
    reward = reward.reshape(states, actions, len(heads))
    mdp = TabularMDP(
        next_state=torch.where(valid[:, None], next_state.reshape(states, actions), stay)[None],
        reward=torch.where(valid[:, None, None], reward, 0.0)[None],
        terminal=(valid[:, None] & terminal.reshape(states, actions))[None],
        goal=torch.full((1, states, actions), -1, dtype=torch.long),
        valid=valid[None],
    )
    start_row, start_col = base.initial[0]
    return mdp, (start_row * width + start_col) * masks


def state_index(env: gymnasium.Env, obs: np.ndarray, heads: Sequence[int] | None = None) -> int:
    """Tabular state, in `four_room_mdp(env, heads)`, of an observation [row, col, collected...]."""
    base = env.unwrapped
    heads = range(base.reward_dim) if heads is None else heads
    row, col, *collected = (int(x) for x in obs)
    tracked = _tracked(env, heads)
    mask = sum(collected[base.shape_ids[cell]] << bit for cell, bit in tracked.items())
    return (row * base.width + col) * (1 << len(tracked)) + mask


def exact_returns(env: gymnasium.Env) -> tuple[Tensor, Tensor]:
    """Exact undiscounted return [K] per head of its own optimal policy and of the uniform one.

    Both run from the start state over the env's time limit (its spec's max_episode_steps), so a
    learner's evaluation return can be read against the best and the chance level. Each head uses
    the model tracking only its own items (16x the cells instead of 4096x), exact for that head.
    """
    spec = env.spec if env.spec is not None else env.unwrapped.spec
    if spec is None or spec.max_episode_steps is None:
        raise ValueError("the env has no max_episode_steps to use as the horizon")
    optimal, random = [], []
    for head in range(env.unwrapped.reward_dim):
        mdp, start = four_room_mdp(env, [head])
        reward = mdp.reward[..., 0]
        optimal.append(finite_horizon_return(mdp, reward, spec.max_episode_steps)[0, start])
        random.append(
            finite_horizon_return(mdp, reward, spec.max_episode_steps, "random")[0, start]
        )
    return torch.stack(optimal), torch.stack(random)
