"""The side-effect worlds: layouts, the enumerated model against the batched steps, side-effect
events (an irrecoverable box, a broken vase, lava, button presses) and the config section."""

import pytest
import torch

from composable_rl.config import Config, ConfigError, from_dict
from composable_rl.registry import make_world
from envs.check import check_world
from envs.safety import LAYOUTS, NOOP, SafetyGrid, parse_safety_layout

UP, RIGHT, DOWN, LEFT = range(4)


def play(world: SafetyGrid, actions: list[int]) -> list[dict]:
    """Step slot 0 (of every slot) through `actions`; the reward, events and ends of each step."""
    world.reset(0)
    out = []
    for a in actions:
        _, reward, terminated, truncated, info = world.step(torch.full((world.num_envs,), a))
        events = dict(zip(world.side_effect_names, info["side_effects"][0].tolist(), strict=True))
        out.append({"reward": reward[0].tolist(), "done": bool(terminated[0]), **events})
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_passes_the_world_contract(layout):
    check_world(SafetyGrid(layout=layout, num_envs=4, aux_heads=2, starts="random"), steps=60)


def test_pushing_the_box_into_the_corner_is_the_one_irrecoverable_push():
    world = SafetyGrid(layout="box", num_envs=2)
    assert world.head_names == ["goal", "box"] and world.noop_action == NOOP
    short = play(world, [DOWN, RIGHT, DOWN, DOWN, RIGHT])  # 5 steps: the box ends in the corner
    assert [s["box"] for s in short] == [1, 0, 0, 0, 0] and short[-1]["done"]
    assert short[0]["reward"] == pytest.approx([-0.1, -1.0]) and short[-1]["reward"] == [2, 0]
    safe = play(world, [LEFT, DOWN, RIGHT, DOWN, RIGHT, RIGHT, DOWN])  # box pushed right: 7
    assert sum(s["box"] for s in safe) == 0 and safe[-1]["done"]


def test_a_vase_breaks_once_and_lava_and_the_button_count_every_entry():
    vase = play(SafetyGrid(layout="vase", num_envs=1), [RIGHT, RIGHT, LEFT, RIGHT, RIGHT, RIGHT])
    assert [s["vase"] for s in vase] == [0, 1, 0, 0, 0, 0] and vase[-1]["done"]
    button = SafetyGrid(layout="button", num_envs=1, button_reward=1.0)
    presses = play(button, [DOWN, RIGHT, RIGHT, NOOP, LEFT, RIGHT])
    assert [s["button"] for s in presses] == [0, 0, 1, 0, 0, 1]
    assert presses[2]["reward"][0] == pytest.approx(0.9)  # the step's -0.1 and the button's 1
    assert button.intended_task.tolist() == [1.0, 1.0]  # goal head + 1 * (-1 per press)
    lava = play(SafetyGrid(layout="lava_test", num_envs=1), [DOWN, DOWN, UP, DOWN])
    assert [s["lava"] for s in lava] == [0, 1, 0, 1]


def test_the_exact_model_matches_the_batched_steps():
    world = SafetyGrid(layout="box", num_envs=64, aux_heads=3, starts="random")
    world.reset(3)
    mdp, which, start = world.tabular_episodes()
    assert which.eq(0).all() and mdp.reward.shape[-1] == len(world.head_names) == 5
    assert torch.equal(start, world.state)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        state, actions = world.state, torch.randint(5, (64,), generator=generator)
        _, reward, terminated, truncated, info = world.step(actions)
        assert torch.allclose(reward.double(), mdp.reward[0, state, actions], atol=1e-6)
        assert torch.equal(terminated, mdp.terminal[0, state, actions])
        assert torch.equal(-info["side_effects"][:, 0].double(), mdp.reward[0, state, actions, 1])
        running = ~(terminated | truncated)  # finished slots begin a new episode
        assert torch.equal(world.state[running], mdp.next_state[0, state, actions][running])


@pytest.mark.parametrize(
    "rows, message",
    [
        (["###", "#A#", "###"], "exactly one 'G'"),
        (["####", "#AG#", "#X.#", "####"], "row 2, column 1: unknown character 'X'"),
        (["####", "#AGB", "####"], "border of walls"),
        (["#####", "#ABB#", "#.G.#", "#####"], "one box 'B' at most"),
    ],
)
def test_a_bad_layout_is_one_error_naming_what_is_wrong(rows, message):
    with pytest.raises(ValueError, match=message):
        parse_safety_layout(rows)


def test_the_config_section_builds_the_world_and_names_a_bad_layout():
    cfg = from_dict(Config, {"env": {"name": "safety", "layout": "vase", "aux_heads": 2}})
    world = make_world(cfg.env, 3)
    assert world.head_names == ["goal", "vase", "aux0", "aux1"] and world.num_envs == 3
    with pytest.raises(ConfigError, match="env.layout: unknown layout 'vases'"):
        from_dict(Config, {"env": {"name": "safety", "layout": "vases"}})
