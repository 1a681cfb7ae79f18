"""Grid machinery: layouts, wall-blocked moves and the counter-based per-slot RNG."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.gridworld import (
    ACTION_NAMES,
    NUM_ACTIONS,
    hash_bits,
    hash_uniform,
    move,
    move_table,
    parse_layout,
)


def test_layouts_have_expected_shapes_and_free_cells():
    four = parse_layout("four_rooms")
    assert four.shape == (13, 13) and four.dtype == torch.bool
    assert int((~four).sum()) == 104
    open5 = parse_layout("open5")
    assert open5.shape == (7, 7) and int((~open5).sum()) == 25
    for walls in (four, open5):
        assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert NUM_ACTIONS == len(ACTION_NAMES) == 4


def test_parse_layout_accepts_rows_and_rejects_unknown_names():
    walls = parse_layout(("###", "#.#", "###"))
    assert walls.tolist() == [[True] * 3, [True, False, True], [True] * 3]
    with pytest.raises(ValueError, match="four_rooms"):
        parse_layout("five_rooms")
    with pytest.raises(ValueError):
        parse_layout(("###", "#.", "###"))
    with pytest.raises(ValueError):
        parse_layout(("#x#",))


def test_move_directions_and_walls_block():
    walls = parse_layout("open5")
    centre = torch.tensor([3 * 7 + 3] * 4)
    moved = move(centre, torch.arange(4), walls)
    assert moved.tolist() == [2 * 7 + 3, 3 * 7 + 4, 4 * 7 + 3, 3 * 7 + 2]
    corner = torch.tensor([1 * 7 + 1] * 4)
    assert move(corner, torch.arange(4), walls).tolist() == [8, 9, 15, 8]


def test_move_through_four_rooms_doorway():
    walls = parse_layout("four_rooms")
    left_of_door = torch.tensor([3 * 13 + 5])
    assert move(left_of_door, torch.tensor([1]), walls).tolist() == [3 * 13 + 6]
    above_wall = torch.tensor([5 * 13 + 1])
    assert move(above_wall, torch.tensor([2]), walls).tolist() == [5 * 13 + 1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 168), st.integers(0, 3)), min_size=1, max_size=20))
def test_move_lands_on_free_neighbour_or_stays(pairs):
    walls = parse_layout("four_rooms")
    free = torch.nonzero(~walls.flatten()).flatten()
    cells = free[torch.tensor([c for c, _ in pairs]) % free.numel()]
    nxt = move(cells, torch.tensor([a for _, a in pairs]), walls)
    assert not walls.flatten()[nxt].any()
    manhattan = (nxt // 13 - cells // 13).abs() + (nxt % 13 - cells % 13).abs()
    assert (manhattan <= 1).all()


def test_move_table_holds_every_move():
    walls = parse_layout("four_rooms")
    table = move_table(walls)
    assert table.shape == (walls.numel(), NUM_ACTIONS)
    cells = torch.arange(walls.numel())
    for action in range(NUM_ACTIONS):
        moved = move(cells, torch.full_like(cells, action), walls)
        assert torch.equal(table[:, action], moved)


def test_hash_uniform_is_per_slot_and_in_range():
    seeds = torch.arange(100, 164)
    counters = torch.arange(64) % 5
    index = torch.arange(30)
    batch = hash_uniform(seeds, counters, index)
    assert batch.shape == (64, 30) and batch.dtype == torch.float64
    assert (batch >= 0).all() and (batch < 1).all()
    for i in (0, 17, 63):
        alone = hash_uniform(seeds[i : i + 1], counters[i : i + 1], index)
        assert torch.equal(alone[0], batch[i])
    per_row = hash_uniform(seeds, counters, index.expand(64, 30))
    assert torch.equal(per_row, batch)
    bits = hash_bits(seeds, counters, index)
    assert bits.dtype == torch.long and (bits >= 0).all() and (bits < 2**32).all()
    assert torch.equal(bits.double() / 2**32, batch)
    other_counter = hash_uniform(seeds, counters + 1, index)
    assert (other_counter != batch).float().mean() > 0.99


def test_hash_uniform_is_roughly_uniform():
    u = hash_uniform(torch.arange(500), torch.zeros(500, dtype=torch.long), torch.arange(200))
    counts = torch.histc(u.float(), bins=10, min=0, max=1)
    expected = u.numel() / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 9 degrees of freedom; 40 is far in the tail
    assert abs(float(torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0]]))[0, 1])) < 0.15
