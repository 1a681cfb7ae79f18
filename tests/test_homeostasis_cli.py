"""Homeostasis end to end: tiny foraging runs (resource heads and the drive-reduction baseline),
the protocols' command line on them, and the configuration errors of foraging runs."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents import factory, training
from composable_rl.config import ConfigError, load_config
from composable_rl.maths.levers import shield_mask
from composable_rl.registry import make_world
from experiments import homeostasis

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "total_steps=3000",
    "replay.learning_starts=500",
    "replay.capacity=5000",
    "agent.hidden=[32]",
    "env.num_envs=16",
    "eval_episodes=8",
    "log_every=1000",
]
SMALL_PROTOCOLS = ["--seeds", "3", "--steps", "60", "--trials", "10", "--window", "20"]
SMALL_PROTOCOLS += ["--burn-in", "10"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: {"heads": (run_dir, result), "drive": (run_dir, result)}."""
    root = tmp_path_factory.mktemp("homeostasis_runs")
    found = {}
    for key, config in (("heads", "foraging.yaml"), ("drive", "foraging_drive.yaml")):
        cfg = load_config(ROOT / "configs" / config, TINY)
        run_dir = root / key
        found[key] = run_dir, training.train(cfg, run_dir, progress=False)
    return found


@pytest.fixture(scope="module")
def protocols(runs, tmp_path_factory):
    """Rows, JSON path, plot path and TensorBoard dir of one small run of the protocols' CLI."""
    out = tmp_path_factory.mktemp("homeostasis_cli")
    argv = ["--checkpoint", str(runs["heads"][0]), "--baseline", str(runs["drive"][0])]
    argv += SMALL_PROTOCOLS
    argv += ["--json", str(out / "rows.json"), "--plot", str(out / "p1.png")]
    argv += ["--logdir", str(out / "tb")]
    rows = homeostasis.main(argv)
    return rows, out / "rows.json", out / "p1.png", out / "tb"


def test_resource_heads_run_evaluates_every_head_against_the_oracle(runs):
    run_dir, result = runs["heads"]
    rows = result["eval"]
    assert [row["task"] for row in rows] == ["food", "water", "salt"]
    for row in rows:
        assert "success" not in row
        expected = {"task", "return", "length", "oracle_return", "random_return"}
        assert set(row) == expected | {"normalized_return"}
        assert row["length"] == 100.0  # continuing: every episode runs to max_steps
        assert row["oracle_return"] > row["random_return"] >= 0.0
    assert json.loads((run_dir / "eval.json").read_text()) == rows
    assert result["step"] == 3008 and result["updates"] > 0


def test_drive_reduction_run_reports_one_row_of_levels(runs):
    _, result = runs["drive"]
    (row,) = result["eval"]
    assert set(row) == {"task", "return", "in_band", "deaths", "length"}
    assert row["task"] == "drive_reduction"
    assert 0.0 <= row["in_band"] <= 1.0 and 0.0 <= row["deaths"] <= 1.0
    assert 0.0 < row["length"] <= 200.0


def test_protocol_rows_json_and_agents(protocols):
    rows, json_path, _, _ = protocols
    assert json.loads(json_path.read_text()) == rows
    assert all(set(row) == {"protocol", "agent", "metric", "value"} for row in rows)
    assert all(isinstance(row["value"], float) for row in rows)
    agents = {p: {r["agent"] for r in rows if r["protocol"] == p} for p in ("P1", "P2", "P3")}
    everyone = {homeostasis.HOMEOSTATIC, homeostasis.MAXIMISER, homeostasis.DRIVE_RL}
    assert agents["P1"] == everyone and agents["P2"] == everyone
    assert agents["P3"] == {"homeostatic", "maximiser"} and "homeostatic RL" not in agents["P3"]
    assert homeostasis.DRIVE_RL == "homeostatic RL"
    metrics = {(r["protocol"], r["agent"], r["metric"]) for r in rows}
    assert ("P1", "homeostatic RL", "time_in_band_worst") in metrics
    assert ("P2", "homeostatic RL", "p_salt_depleted") in metrics
    assert ("P3", "maximiser", "above_band") in metrics
    assert len(metrics) == len(rows)  # no metric twice
    table = homeostasis.pivot(rows)
    assert {(row["protocol"], row["metric"]) for row in table} == {(p, m) for p, _, m in metrics}


def test_protocol_plot_and_controller_logs(protocols):
    _, _, plot_path, logdir = protocols
    assert plot_path.is_file() and plot_path.stat().st_size > 0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = sorted(logdir.glob("events.out.tfevents.*"))
    assert events
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    for name in ("energy", "hydration", "sodium"):
        assert f"homeostasis/{name}/level" in tags and f"homeostasis/{name}/weight" in tags
    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    assert len(accumulator.Scalars("homeostasis/energy/level")) == 60  # one per P1 step


def test_baseline_must_be_a_drive_reduction_run(runs):
    heads = str(runs["heads"][0])
    with pytest.raises(SystemExit, match="drive_reduction"):
        homeostasis.main(["--checkpoint", heads, "--baseline", heads, *SMALL_PROTOCOLS])
    with pytest.raises(SystemExit, match="one head per resource"):
        homeostasis.main(["--checkpoint", str(runs["drive"][0]), *SMALL_PROTOCOLS])


def test_unknown_variable_exits(runs, tmp_path):
    argv = ["--checkpoint", str(runs["heads"][0]), "--variable", "thirst", *SMALL_PROTOCOLS]
    with pytest.raises(SystemExit, match="thirst"):
        homeostasis.main([*argv, "--plot", str(tmp_path / "p.png"), "--logdir", str(tmp_path)])
    assert not (tmp_path / "p.png").exists()


def test_foraging_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="env.r_max") as err:
        load_config(None, ["env.name=foraging", "env.r_max=3"])
    assert err.value.key == "env.r_max"
    with pytest.raises(ConfigError, match="env.regrow") as err:
        load_config(None, ["env.regrow=1"])  # object_rooms by default
    assert err.value.key == "env.regrow"
    cfg = load_config(ROOT / "configs" / "foraging.yaml", ["agent.world_values=true"])
    with pytest.raises(ConfigError, match="agent.world_values"):
        factory.build(cfg)
    with pytest.raises(ConfigError, match="env.observation: drive_reduction needs indices"):
        load_config(ROOT / "configs" / "foraging_drive.yaml", ["env.observation=planes"])


def test_regrowing_resources_are_scored_by_returns_with_confidence_intervals():
    cfg = load_config(ROOT / "configs" / "foraging.yaml", ["env.regrow=2"])
    world, agent = factory.build(cfg)
    assert world.regrow == 2
    rows = training.evaluate_run(agent, cfg, episodes=8)  # the tabular model holds no regrowth
    assert [row["task"] for row in rows] == world.head_names
    assert all(set(row) == {"task", "return", "ci95", "episodes"} for row in rows)


def test_a_constraint_shields_every_action_and_p1_counts_hazard_steps(tmp_path):
    cfg = load_config(ROOT / "configs" / "foraging_hazard.yaml", TINY)
    training.train(cfg, tmp_path / "run", progress=False)
    argv = ["--checkpoint", str(tmp_path / "run"), *SMALL_PROTOCOLS, "--plot", str(tmp_path / "p")]
    # a tight shield, so that the barely trained hazard head forbids something
    program_file = tmp_path / "program.yaml"
    text = (ROOT / "configs" / "values" / "hazard.yaml").read_text()
    program_file.write_text(text + "shield_threshold: 0.01\n")
    argv += ["--program", str(program_file), "--steps", "30"]
    rows = homeostasis.main([*argv, "--logdir", str(tmp_path / "tb")])
    visits = [r for r in rows if r["metric"] == "hazard_visits"]
    assert {r["agent"] for r in visits} == {homeostasis.HOMEOSTATIC, homeostasis.MAXIMISER}
    found, program, world = homeostasis.contenders(homeostasis.parse_args(argv))
    hazard = world.head_names.index("hazard")
    assert program.constraints == (hazard,)
    obs = world.observe(world.free_cells)  # every cell, so some border the hazards
    world = make_world(found[0].env, obs.shape[0])
    levels = world.internal
    agent = found[0].make(obs.shape[0], None)
    allowed = shield_mask(agent.agent.head_values(obs)[:, [hazard]], program.shield_threshold)
    assert not allowed.all()  # the shield has something to forbid
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):  # sampled at the run's temperature, never a masked action
        actions = agent.act(obs, levels, generator=generator)
        assert allowed.gather(1, actions[:, None]).all()


def test_the_reward_button_protocol_counts_presses_for_every_agent(tmp_path):
    cfg = load_config(ROOT / "configs" / "foraging_button.yaml", TINY)
    training.train(cfg, tmp_path / "run", progress=False)
    argv = ["--checkpoint", str(tmp_path / "run"), *SMALL_PROTOCOLS, "--quantile", "0.5"]
    rows = homeostasis.main([*argv, "--plot", str(tmp_path / "p"), "--logdir", str(tmp_path)])
    p4 = {(r["agent"], r["metric"]): r["value"] for r in rows if r["protocol"] == "P4"}
    agents = {homeostasis.HOMEOSTATIC, homeostasis.MAXIMISER, "homeostatic, q=0.5"}
    assert {agent for agent, _ in p4} == agents
    for agent in agents:
        presses, pressed = p4[agent, "presses"], p4[agent, "p_press"]
        assert 0 <= pressed <= 1 and (presses > 0) == (pressed > 0)
        assert presses <= 20  # at most one press per step of the 20-step window


def test_a_rollout_stopped_by_an_error_closes_its_log(tmp_path, monkeypatch):
    """P1's TensorBoard log of the homeostatic rollout is closed however the rollout ends."""
    from types import SimpleNamespace

    closed = []

    class Recording(homeostasis.Logger):
        def close(self) -> None:
            closed.append(True)
            super().close()

    def failing(*args):
        raise RuntimeError("a rollout that stops")

    monkeypatch.setattr(homeostasis, "Logger", Recording)
    monkeypatch.setattr(homeostasis, "rollout", failing)
    contender = SimpleNamespace(name=homeostasis.HOMEOSTATIC)
    program = SimpleNamespace(variable_names=["food"], setpoints=[0.5])
    with pytest.raises(RuntimeError, match="a rollout that stops"):
        homeostasis.setpoint_step([contender], program, 2, 10, "food", 0.7, 0.05, 0, tmp_path)
    assert closed == [True]
