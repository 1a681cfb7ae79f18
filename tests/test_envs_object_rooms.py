"""Batched ObjectRooms engine: layouts, rewards, episode ends, auto-reset, per-slot RNG, render."""

import numpy as np
import pytest
import torch

from envs.object_rooms import ObjectRooms

UP, RIGHT, DOWN, LEFT = range(4)


def cell(row: int, col: int, width: int = 13) -> int:
    return row * width + col


def test_names_and_attributes():
    world = ObjectRooms(num_envs=2)
    assert world.goal_names == [
        "beige_circle",
        "beige_square",
        "blue_circle",
        "blue_square",
        "purple_circle",
        "purple_square",
    ]
    assert world.head_names == ["beige", "blue", "purple", "circle", "square"]
    assert (world.num_goals, world.num_heads, world.action_spec.n) == (6, 5, 4)
    assert world.obs_shape == (7, 13, 13)
    assert world.goal_membership.sum(1).tolist() == [2] * 6
    assert world.goal_membership[3].tolist() == [False, True, False, False, True]


def test_custom_heads_and_unknown_head():
    world = ObjectRooms(num_envs=1, heads=["square", "blue"])
    assert world.head_names == ["square", "blue"]
    assert world.goal_membership.tolist() == [
        [False, False],
        [True, False],
        [False, True],
        [True, True],
        [False, False],
        [True, False],
    ]
    with pytest.raises(ValueError, match=r"'green'.*beige"):
        ObjectRooms(num_envs=1, heads=["blue", "green"])


def test_reset_places_distinct_objects_and_a_free_start():
    world = ObjectRooms(num_envs=256)
    obs = world.reset(5)
    free = ~world.walls.flatten()
    assert free[world.objects].all() and free[world.agent].all()
    assert all(len(set(row)) == 6 for row in world.objects.tolist())
    assert not (world.objects == world.agent[:, None]).any()
    assert obs.dtype == torch.uint8 and obs.shape == (256, 7, 13, 13)
    flat = obs.flatten(2)
    assert torch.equal(flat[:, 0], world.walls.flatten().expand(256, -1).to(torch.uint8))
    assert (flat[:, 1].sum(1) == 1).all()
    assert (flat[:, 2:5].sum(2) == 2).all() and (flat[:, 5:].sum(2) == 3).all()
    assert torch.equal(flat[:, 1].argmax(1), world.agent)
    purple_square = (flat[:, 4] * flat[:, 6]).argmax(1)
    assert torch.equal(purple_square, world.objects[:, 5])
    assert world.agent.unique().numel() > 60 and world.objects.unique().numel() > 90


def test_index_observations_match_the_planes_and_mark_each_goal():
    planes, indices = ObjectRooms(num_envs=4), ObjectRooms(num_envs=4, observation="indices")
    obs_p, obs_i = planes.reset(3), indices.reset(3)
    assert torch.equal(planes.objects, indices.objects)
    cells, m = 13 * 13, indices.num_goals
    for b in range(4):  # the absolute columns are the planes' ones past the constant wall plane
        ones = obs_p[b].flatten().nonzero().flatten()
        assert sorted(obs_i[b, : 1 + 2 * m].tolist()) == (ones[ones >= cells] - cells).tolist()
    assert planes.goal_slots is None and indices.goal_slots.shape == (m, 4)
    span = 2 * 13 - 1
    for g, name in enumerate(indices.goal_names):
        colour, shape = name.split("_")
        planes_of_g = [indices.head_names.index(colour), indices.head_names.index(shape)]
        absolute = obs_i[:, indices.goal_slots[g, :2]]
        expected = (1 + torch.tensor(planes_of_g)) * cells + indices.objects[:, g, None]
        assert torch.equal(absolute, expected)
        relative = obs_i[:, indices.goal_slots[g, 2:]] - (1 + 5) * cells
        plane, offset = relative.div(span * span, rounding_mode="floor"), relative % (span * span)
        assert plane.tolist() == [planes_of_g] * 4
        d_row = indices.objects[:, g] // 13 - indices.agent // 13
        d_col = indices.objects[:, g] % 13 - indices.agent % 13
        assert torch.equal(offset[:, 0], (d_row + 12) * span + d_col + 12)


def test_walls_block_and_cost_a_step():
    world = ObjectRooms(num_envs=1, step_reward=-0.25)
    world.agent = torch.tensor([cell(1, 1)])
    world.objects = torch.tensor([[cell(r, 11) for r in range(1, 7)]])
    _, reward, terminated, truncated, info = world.step(torch.tensor([UP]))
    assert world.agent.tolist() == [cell(1, 1)]
    assert torch.equal(reward, torch.full((1, 5), -0.25))
    assert not terminated.any() and not truncated.any() and info["goal"].tolist() == [-1]
    world.step(torch.tensor([RIGHT]))
    assert world.agent.tolist() == [cell(1, 2)]


def test_collecting_each_object_gives_per_head_rewards_and_terminates():
    world = ObjectRooms(num_envs=6, layout="open5", r_max=3.0, r_min=-0.5)
    row_one = [cell(1, c, 7) for c in range(1, 6)]
    world.objects = torch.tensor([row_one[:i] + [cell(3, 3, 7)] + row_one[i:] for i in range(6)])
    world.agent = torch.full((6,), cell(3, 2, 7))
    _, reward, terminated, truncated, info = world.step(torch.full((6,), RIGHT))
    assert info["goal"].tolist() == list(range(6))
    assert terminated.all() and not truncated.any()
    assert reward.dtype == torch.float32
    assert torch.equal(reward, torch.where(world.goal_membership, 3.0, -0.5))


def test_transition_is_pure():
    world = ObjectRooms(num_envs=3)
    world.reset(1)
    state = [world.agent.clone(), world.objects.clone(), world.t.clone()]
    args = (world.agent.clone(), world.objects.clone(), torch.tensor([UP, RIGHT, DOWN]))
    first = world.transition(*args)
    second = world.transition(*args)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(state, state[:2] + [world.t], strict=True))
    assert torch.equal(world.agent, state[0]) and torch.equal(world.objects, state[1])


def test_truncated_and_terminated_are_kept_apart():
    world = ObjectRooms(num_envs=2, layout="open5", max_steps=3)
    world.agent = torch.full((2,), cell(1, 1, 7))
    world.objects = torch.tensor([[cell(4, 1, 7)] + [cell(5, c, 7) for c in range(1, 6)]] * 2)
    actions = torch.tensor([LEFT, DOWN])
    for _ in range(2):
        _, _, terminated, truncated, _ = world.step(actions)
        assert not terminated.any() and not truncated.any()
    _, reward, terminated, truncated, info = world.step(actions)
    assert terminated.tolist() == [False, True] and truncated.tolist() == [True, False]
    assert info["goal"].tolist() == [-1, 0]
    assert reward[0].tolist() == pytest.approx([-0.1] * 5)
    assert reward[1].tolist() == pytest.approx([2.0, -0.1, -0.1, 2.0, -0.1])


def test_fixed_layout_and_its_validation():
    positions = [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]
    world = ObjectRooms(num_envs=128, object_positions=positions)
    world.reset(3)
    fixed = torch.tensor([cell(r, c) for r, c in positions])
    assert torch.equal(world.objects, fixed.expand(128, -1))
    assert not (world.objects == world.agent[:, None]).any()
    assert world.agent.unique().numel() > 50
    bad = {
        "needs 6": positions[:5],
        "outside": positions[:5] + [[13, 1]],
        "wall": positions[:5] + [[0, 0]],
        "distinct": positions[:5] + [[1, 1]],
        "row, col": positions[:5] + [[1, 2, 3]],
    }
    for message, layout in bad.items():
        with pytest.raises(ValueError, match=message):
            ObjectRooms(num_envs=1, object_positions=layout)


def test_other_constructor_validation():
    with pytest.raises(ValueError, match="free cells"):
        ObjectRooms(num_envs=1, layout=("####", "#..#", "####"))
    with pytest.raises(ValueError):
        ObjectRooms(num_envs=1, colours=("blue", "blue"))
    with pytest.raises(ValueError, match="four_rooms"):
        ObjectRooms(num_envs=1, layout="nowhere")
    world = ObjectRooms(num_envs=3)
    with pytest.raises(ValueError, match="one seed per env"):
        world.reset([1, 2])


def test_auto_reset_and_final_obs():
    world = ObjectRooms(num_envs=4, max_steps=5)
    world.reset(11)
    world.agent[0] = cell(1, 1)
    world.objects[0] = torch.tensor([cell(1, 2)] + [cell(9, c) for c in range(1, 6)])
    world.t[1] = 4
    objects_before = world.objects.clone()
    agent_before = world.agent.clone()
    actions = torch.tensor([RIGHT, UP, UP, UP])
    reached = world.transition(agent_before, objects_before, actions)[0]
    obs, _, terminated, truncated, info = world.step(actions)
    done = terminated | truncated
    assert done[:2].all()
    assert torch.equal(info["final_obs"], world.observe(reached, objects_before))
    assert torch.equal(obs[~done], info["final_obs"][~done])
    assert torch.equal(obs, world.observe(world.agent, world.objects))
    assert world.episode.tolist() == [1, 1] + [int(d) for d in done[2:]]
    assert world.t[:2].tolist() == [0, 0]
    agent_new, objects_new = world.sample_layout(world.seeds[:2], world.episode[:2])
    assert torch.equal(world.agent[:2], agent_new) and torch.equal(world.objects[:2], objects_new)


def test_per_slot_rng_does_not_depend_on_batch_size():
    big = ObjectRooms(num_envs=64, max_steps=4)
    big.reset(1234)
    small = ObjectRooms(num_envs=1, max_steps=4)
    for i in (0, 9, 63):
        small.reset(1234 + i)
        assert torch.equal(small.agent, big.agent[i : i + 1])
        assert torch.equal(small.objects, big.objects[i : i + 1])
    seeds = torch.tensor([7, 7, 8])
    episodes = torch.tensor([0, 1, 0])
    agent, objects = big.sample_layout(seeds, episodes)
    assert not torch.equal(objects[0], objects[1]) and not torch.equal(objects[0], objects[2])
    for j in range(3):
        single = big.sample_layout(seeds[j : j + 1], episodes[j : j + 1])
        assert torch.equal(single[0], agent[j : j + 1])
        assert torch.equal(single[1], objects[j : j + 1])
    mixed = ObjectRooms(num_envs=3)
    mixed.reset(torch.tensor([1234 + 9, 5, 1234]))
    assert torch.equal(mixed.objects[0], big.objects[9])
    assert torch.equal(mixed.objects[2], big.objects[0])


def test_render_rgb():
    world = ObjectRooms(num_envs=2, colours=("beige", "blue", "purple", "teal"))
    world.reset(0)
    image = world.render_rgb(1)
    assert image.shape == (13 * 16, 13 * 16, 3) and image.dtype == np.uint8

    def tile(flat: int) -> np.ndarray:
        row, col = divmod(flat, 13)
        return image[row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16]

    tiles = dict(zip(world.goal_names, map(tile, world.objects[1].tolist()), strict=True))
    centres = {tuple(tiles[f"{c}_circle"][8, 8]) for c in world.colours}
    assert len(centres) == 4
    shape_masks = [(tiles[f"blue_{s}"] != tiles[f"blue_{s}"][0, 0]).any(-1) for s in world.shapes]
    assert not np.array_equal(*shape_masks)
    agent_tile = tile(int(world.agent[1]))
    floor, wall = tuple(agent_tile[0, 0]), tuple(image[0, 0])
    assert len({tuple(agent_tile[8, 8]), floor, wall} | centres) == 7
