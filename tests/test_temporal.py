"""Temporal tasks on the Office world: the task world, the evaluation harness, direct training."""

import pytest
import torch

from agents import training
from composable_rl.config import Config, from_dict
from composable_rl.maths.oracle import product_steps
from envs.office import START, cell_of
from envs.temporal import TEMPORAL_KEYS, OfficeTask, evaluate_temporal, office_machine

COFFEE_OFFICE = "F(f & F g) & G !n"
UP, RIGHT, DOWN, LEFT = range(4)


def test_yaml_machine_equals_the_ltl_one():
    from_yaml = office_machine("configs/tasks/coffee_office.yaml")
    from_formula = office_machine(COFFEE_OFFICE)
    steps = [
        product_steps(
            OfficeTask(task=COFFEE_OFFICE).next_cell,
            OfficeTask(task=COFFEE_OFFICE).cell_label,
            m.table()[0],
            torch.tensor([u in m.accepting for u in range(len(m.states))]),
        )[:, m.initial]
        for m in (from_yaml, from_formula)
    ]
    assert torch.equal(*steps)


def test_task_world_rewards_violations_and_acceptance():
    world = OfficeTask(task=COFFEE_OFFICE, num_envs=3, starts="standard", max_steps=50)
    assert world.head_names == ["task"] and world.num_goals == 0
    assert world.obs_shape == (2,) and world.num_features == 108 + len(world.machine.states)
    assert world.violation_reward < world.step_reward / (1 - 0.99)  # worse than wandering
    world.agent = torch.tensor([cell_of(3, 7), cell_of(4, 6), cell_of(2, 1)])
    world.state = torch.tensor([world.machine.initial, 1, world.machine.initial])
    # 0 steps onto coffee, 1 (already had coffee) onto a plant, 2 walks right
    obs, reward, terminated, truncated, info = world.step(torch.tensor([DOWN, UP, RIGHT]))
    assert reward[:, 0].tolist() == pytest.approx([-0.1, world.violation_reward, -0.1])
    assert terminated.tolist() == [False, True, False]
    assert info["final_obs"][1].tolist() == [cell_of(4, 7), 108 + 2]  # the rejecting sink
    assert obs[1].tolist() == [cell_of(*START), 108 + world.machine.initial]  # auto-reset
    assert obs[0, 1].item() == 108 + 1  # coffee moved the machine on
    world.agent = torch.tensor([cell_of(4, 5), 0, 0])
    _, reward, terminated, _, _ = world.step(torch.tensor([DOWN, DOWN, DOWN]))
    assert reward[0, 0].item() == 2.0 and terminated[0]


def test_oracle_policy_scores_the_oracle_and_random_policy_does_not():
    world = OfficeTask(task=COFFEE_OFFICE, num_envs=1)
    steps = product_steps(world.next_cell, world.cell_label, world.machine_next, world.accepting)

    def oracle(obs, states):
        nxt = world.next_cell[obs[:, 0]]  # [N, A] from the agent cells

        after = world.machine_next[states[:, None], world.labels(nxt)]
        cost = steps[nxt, after].masked_fill(steps[nxt, after] < 0, 10_000)
        return cost.argmin(1)

    for starts in ("standard", "random"):
        row = evaluate_temporal(COFFEE_OFFICE, oracle, starts, episodes=50)
        assert tuple(row) == TEMPORAL_KEYS
        assert row["success"] == 1.0 and row["steps"] == row["oracle_steps"]
        assert row["violations"] == 0.0
    gen = torch.Generator().manual_seed(0)
    row = evaluate_temporal(
        COFFEE_OFFICE, lambda o, s: torch.randint(4, s.shape, generator=gen), "random", 50
    )
    assert row["success"] < 0.5 and row["violations"] > 0.2
    with pytest.raises(ValueError, match="standard"):
        evaluate_temporal(COFFEE_OFFICE, oracle, "anywhere")


def test_direct_training_on_a_task_reports_both_starts(tmp_path):
    cfg = from_dict(
        Config,
        {
            "total_steps": 2_000,
            "eval_episodes": 5,
            "env": {"name": "office", "num_envs": 32, "task": COFFEE_OFFICE},
            "agent": {"hidden": [16]},
            "replay": {"capacity": 4_000, "batch_size": 32, "learning_starts": 500},
        },
    )
    result = training.train(cfg, tmp_path / "run", progress=False)
    assert [row["start"] for row in result["eval"]] == ["standard", "random"]
    assert all(tuple(row) == TEMPORAL_KEYS for row in result["eval"])
    assert (tmp_path / "run" / "eval.json").is_file()
