"""The component-action rule of Skill Machines: literals act with their best goal's actor, OR and
AND pick a child's action by its own value (the baseline beside composed values)."""

import json

import pytest
import torch

from agents import training
from agents.component_rule import rule_choice, rule_policy
from agents.factory import build
from composable_rl.config import Config, from_dict
from composable_rl.languages.expressions import parse
from tests.scripts import run_script
from tests.test_point_goals import tiny_run

NAMES = ["a", "b", "MAX", "MIN"]
GOALS = 3


def random_values(n: int = 64) -> torch.Tensor:
    """Q_k(s, g, a_c) [N, K, G, K * G] of random numbers."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, len(NAMES), GOALS, len(NAMES) * GOALS, generator=generator)


def own_values(values: torch.Tensor, head: int) -> torch.Tensor:
    """Q_head(s, g, the action of actor (head, g)) [N, G]."""
    return torch.stack([values[:, head, g, head * GOALS + g] for g in range(GOALS)], 1)


def test_a_head_acts_with_the_actor_of_its_best_goal():
    values = random_values()
    value, chosen = rule_choice(parse("b"), values, NAMES)
    best, goal = own_values(values, 1).max(1)
    assert torch.equal(value, best) and torch.equal(chosen, GOALS + goal)


def test_or_takes_the_higher_child_and_and_the_lower():
    values = random_values()
    a, b = own_values(values, 0).amax(1), own_values(values, 1).amax(1)
    either, either_chosen = rule_choice(parse("a | b"), values, NAMES)
    both, both_chosen = rule_choice(parse("a & b"), values, NAMES)
    assert torch.equal(either, torch.maximum(a, b)) and torch.equal(both, torch.minimum(a, b))
    assert torch.equal(either_chosen >= GOALS, b > a)  # b's actors come after a's
    assert torch.equal(both_chosen >= GOALS, b < a)


def test_not_is_the_bounds_minus_the_head_at_its_own_actors_and_obeys_de_morgan():
    values = random_values()
    value, chosen = rule_choice(parse("~a"), values, NAMES)
    at_own = torch.stack([values[:, :, g, g] for g in range(GOALS)], 2)  # actor (a, g): [N,K,G]
    negated = at_own[:, 2] + at_own[:, 3] - at_own[:, 0]
    assert torch.equal(value, negated.amax(1)) and torch.equal(chosen, negated.argmax(1))
    for pushed, expanded in (("~(a | b)", "~a & ~b"), ("~(a & ~b)", "~a | b")):
        left, right = (
            rule_choice(parse(pushed), values, NAMES),
            rule_choice(parse(expanded), values, NAMES),
        )
        assert torch.equal(left[0], right[0]) and torch.equal(left[1], right[1])


@pytest.mark.parametrize(
    ("text", "names", "match"),
    [
        ("0.5*a + b", NAMES, "composes \\|, & and ~ over heads"),
        ("~a", ["a", "b", "c", "d"], "NOT needs the bound heads MAX and MIN"),
    ],
)
def test_what_the_rule_cannot_compose_is_one_error(text, names, match):
    with pytest.raises(ValueError, match=match):
        rule_choice(parse(text), random_values(4), names)


def sac_agent(world_values: bool):
    env = (
        {"name": "point_goals", "num_envs": 4, "bound_heads": True}
        if world_values
        else {"name": "linear_quadratic", "num_envs": 4}
    )
    agent = {"heads": "soft_actor_critic", "world_values": world_values, "hidden": [16]}
    return build(from_dict(Config, {"env": env, "agent": agent}))


def test_the_rule_acts_in_the_box_and_needs_world_value_heads():
    world, agent = sac_agent(True)
    obs = world.reset(0)
    actions = rule_policy(agent, parse("blue & ~square | purple"))(obs, torch.zeros(4, 1))
    assert actions.shape == (4, 2) and actions.abs().max() <= world.speed
    means = agent.to_box(agent.actor_means(obs))
    assert all(
        any(torch.equal(row, m) for m in column) for row, column in zip(actions, means, strict=True)
    )
    _, plain = sac_agent(False)
    with pytest.raises(ValueError, match="world-value soft actor-critic heads"):
        rule_policy(plain, parse("east"))


def test_zero_shot_scores_the_rule_beside_the_composition(tmp_path):
    cfg = tiny_run(128)
    run_dir = tmp_path / "run"
    training.train(cfg, run_dir, progress=False)
    out = tmp_path / "rows.json"
    args = ["--checkpoint", str(run_dir), "--episodes", "4", "--json", str(out)]
    done = run_script("zero_shot.py", *args, "--task", "blue & ~square", "--component-rule")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())
    assert {"normalized_return", "rule_normalized_return", "rule_success"} <= set(row)
    assert "component-action rule: 1 tasks: mean normalised return" in done.stdout
    linear = run_script("zero_shot.py", *args, "--multi-objective", "2", "--component-rule")
    assert linear.returncode == 2 and "Traceback" not in linear.stderr
    assert "--component-rule scores Boolean or temporal tasks" in linear.stderr
