"""End-to-end training checked against the exact oracle, resume, and the CLI's error paths."""

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents import composition, factory, training
from composable_rl.config import Config, ConfigError, from_dict, load_config, to_dict
from composable_rl.maths.oracle import soft_value_iteration
from composable_rl.run.checkpoint import latest_checkpoint, load_checkpoint, load_meta
from envs.gridworld import tabulate
from tests.scripts import run_script

SMALL = {
    "seed": 1,
    "total_steps": 24_000,
    "log_every": 4_000,
    "eval_episodes": 200,
    "env": {
        "layout": "open5",
        "num_envs": 32,
        "colours": ["blue", "purple"],
        "shapes": ["square"],
        "object_positions": [[1, 1], [4, 5]],
        "max_steps": 30,
    },
    "agent": {"gamma": 0.9, "alpha": 0.05, "hidden": [64, 64], "lr": 0.002, "target_period": 100},
    "replay": {"capacity": 50_000, "batch_size": 128, "learning_starts": 1_000, "replay_ratio": 16},
    "tasks": {"epsilon_start": 1.0, "epsilon_end": 0.3, "epsilon_fraction": 0.5},
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Trains the small agent once; returns (config, run_dir, result)."""
    cfg = from_dict(Config, SMALL)
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    return cfg, run_dir, training.train(cfg, run_dir, progress=False)


def test_every_head_is_near_optimal_and_matches_the_oracle_q(small_run):
    cfg, run_dir, result = small_run
    rows = {row["task"]: row for row in result["eval"]}
    assert set(rows) == {"blue", "purple", "square"}
    for row in rows.values():
        assert abs(row["return"] - row["oracle_return"]) <= 0.05 * abs(row["oracle_return"]), row

    world, agent = factory.build(cfg)
    load_checkpoint(latest_checkpoint(run_dir), agent, head_names=world.head_names)
    objects = torch.tensor([[1 * 7 + 1, 4 * 7 + 5]])
    mdp = tabulate(world, objects)
    cells = mdp.valid[0].nonzero().flatten()
    with torch.no_grad():
        q_learned = agent.online(world.observe(cells, objects.expand(len(cells), -1))).double()
    for k, name in enumerate(world.head_names):
        q_oracle = soft_value_iteration(mdp, mdp.reward[..., k], cfg.agent.gamma, cfg.agent.alpha)
        q_oracle = q_oracle[0, cells]
        error = (q_learned[:, k] - q_oracle).abs().mean().item()
        value_range = (q_oracle.max() - q_oracle.min()).item()
        assert error < 0.1 * value_range, f"{name}: mean |dQ| {error:.3f}, range {value_range:.3f}"


def test_run_directory_contents(small_run):
    _, run_dir, result = small_run
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert json.loads((run_dir / "eval.json").read_text()) == result["eval"]
    meta = load_meta(latest_checkpoint(run_dir))
    assert meta["step"] == result["step"] and meta["head_names"] == ["blue", "purple", "square"]


def test_resume_continues_step_counter_and_optimizer(tmp_path):
    cfg = from_dict(Config, {**SMALL, "total_steps": 3_200, "eval_episodes": 0})
    cfg.replay.learning_starts = 640
    first = training.train(cfg, tmp_path, progress=False)
    ckpt = latest_checkpoint(tmp_path)
    world, agent = factory.build(cfg)
    load_checkpoint(ckpt, agent, agent.optimizers)
    adam_step = next(iter(agent.optimizers["online"].state.values()))["step"].item()
    assert first["step"] == 3_200 and adam_step == first["updates"] > 0

    cfg.total_steps, cfg.agent.lr = 6_400, 2e-4  # the resumed run's rate is the config's
    second = training.train(cfg, tmp_path, resume=True, progress=False)
    assert second["step"] == 6_400 and second["updates"] > first["updates"]
    world, agent = factory.build(cfg)
    meta = load_checkpoint(latest_checkpoint(tmp_path), agent, agent.optimizers)
    assert meta["step"] == 6_400 and meta["updates"] == second["updates"]
    adam = agent.optimizers["online"]
    assert next(iter(adam.state.values()))["step"].item() == second["updates"]
    assert adam.param_groups[0]["lr"] == 2e-4


def test_the_learning_rate_falls_linearly_to_lr_end(tmp_path):
    cfg = from_dict(Config, {**SMALL, "total_steps": 3_200, "eval_episodes": 0})
    cfg.agent.lr, cfg.agent.lr_end = 1e-3, 1e-4
    assert [training.lr_at(cfg, step) for step in (0, 1_600, 3_200, 6_400)] == pytest.approx(
        [1e-3, 5.5e-4, 1e-4, 1e-4]
    )
    cfg.replay.learning_starts = 640
    training.train(cfg, tmp_path, progress=False)
    world, agent = factory.build(cfg)
    load_checkpoint(latest_checkpoint(tmp_path), agent, agent.optimizers)
    assert agent.optimizers["online"].param_groups[0]["lr"] == pytest.approx(1e-4)
    cfg.agent.lr_end = None
    assert training.lr_at(cfg, 1_600) == 1e-3


def test_shipped_configs_load_and_build():
    paths = sorted(Path("configs").glob("*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        cfg = load_config(path)
        world, agent = factory.build(cfg)
        assert agent.head_names == world.head_names
        goals = len(world.goal_names) if cfg.agent.world_values else 0
        assert agent.num_goals == goals, path


def test_gpu_configs_are_their_cpu_configs_scaled(monkeypatch):
    """configs/gpu differ from their CPU configs only in the keys that scale a run to one
    GPU, train on as many samples or in as many updates, and build (here on the CPU); a
    CUDA device this machine lacks is one ConfigError."""
    scaled = {"device", "log_every", "num_envs", "batch_size", "replay_ratio", "target_period"}
    scaled |= {"learning_starts"}
    paths = sorted(Path("configs/gpu").glob("*.yaml"))
    assert [p.stem for p in paths] == ["boolean_rooms", "office", "quickstart", "random_rooms"]
    for path in paths:
        gpu, cpu = load_config(path), load_config(Path("configs") / path.name)
        assert gpu.device == "cuda"
        kept = {key: value for key, value in _keys(cpu).items() if key[-1] not in scaled}
        assert {key: _keys(gpu)[key] for key in kept} == kept, path
        samples = [c.total_steps * c.replay.replay_ratio for c in (gpu, cpu)]
        updates = [n / c.replay.batch_size for n, c in zip(samples, (gpu, cpu), strict=True)]
        assert samples[0] == samples[1] or updates[0] == updates[1], path
        factory.build(load_config(path, ["device=cpu", "env.num_envs=8"]))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: cuda, but this torch build .* sees no CUDA"):
        factory.check_device("cuda")


def _keys(cfg: Config) -> dict[tuple[str, ...], object]:
    """Every key of a config by its path, e.g. ('replay', 'batch_size')."""
    out: dict[tuple[str, ...], object] = {}

    def walk(path: tuple[str, ...], value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk((*path, key), item)
        else:
            out[path] = value

    walk((), to_dict(cfg))
    return out


def test_cli_reports_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  lrr: 0.1\n")
    for args, expected in (
        (["--config", str(bad)], "agent.lrr.*valid keys"),
        ([], "--config FILE or --resume"),
        (["--config", "configs/quickstart.yaml", "--set", "env.num_envs=many"], "expected int"),
    ):
        done = run_script("train.py", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert re.search(expected, done.stderr), done.stderr
    done = run_script("train.py", "--help-config")
    assert done.returncode == 0 and "replay.replay_ratio" in done.stdout


def test_fixed_weights_must_match_the_heads():
    cfg = from_dict(Config, {**SMALL, "tasks": {"fixed_weights": [1.0, 0.0]}})
    with pytest.raises(ValueError, match=r"tasks.fixed_weights.*\['blue', 'purple', 'square'\]"):
        factory.build(cfg)


def test_goal_conditioned_needs_world_values_and_object_indices():
    with pytest.raises(ValueError, match="agent.goal_conditioned: needs world_values"):
        from_dict(Config, {**SMALL, "agent": {"goal_conditioned": True}})
    agent_cfg = {"world_values": True, "goal_conditioned": True}
    cfg = from_dict(Config, {**SMALL, "agent": agent_cfg})
    world, agent = factory.build(cfg)
    obs = world.reset(0)
    assert agent.online(obs).shape == (world.num_envs, 3, world.num_goals, 4)
    cfg.env.observation = "planes"
    with pytest.raises(ValueError, match="object_rooms with observation: indices"):
        factory.build(cfg)
    office = from_dict(Config, {"env": {"name": "office"}, "agent": agent_cfg})
    with pytest.raises(ValueError, match="agent.goal_conditioned"):
        factory.build(office)


def test_goal_conditioned_run_trains_saves_and_loads(tmp_path):
    settings = {**SMALL, "total_steps": 2_048, "eval_episodes": 0}
    settings["agent"] = {**SMALL["agent"], "world_values": True, "goal_conditioned": True}
    settings["replay"] = {**SMALL["replay"], "learning_starts": 512}
    result = training.train(from_dict(Config, settings), tmp_path / "run", progress=False)
    assert result["updates"] > 0
    cfg, world, agent = composition.load(tmp_path / "run")
    assert cfg.agent.goal_conditioned and agent.online.goal_conditioned
    stored = load_file(latest_checkpoint(tmp_path / "run") / "model.safetensors")
    state = agent.state_dict()
    assert stored.keys() == state.keys() and "online.encoder.target.weight" in stored
    assert all(torch.equal(stored[key], value) for key, value in state.items())
    obs = world.reset(5)
    assert agent.online(obs).shape == (world.num_envs, 3, world.num_goals, 4)


def test_cnn_needs_plane_observations():
    cfg = from_dict(Config, {**SMALL, "agent": {"encoder": "cnn"}})
    with pytest.raises(ValueError, match="cnn needs image observations, the world gives indices"):
        factory.build(cfg)
    cfg.env.observation = "planes"
    world, agent = factory.build(cfg)
    assert world.obs_shape == (5, 7, 7)  # walls, agent, 2 colour planes, 1 shape plane
    assert agent.online(torch.zeros(2, *world.obs_shape)).shape == (2, 3, 4)
