"""device_graphs: the world's step compiled once gives the same runs as the step itself, and a
step that cannot be compiled runs as written after one warning."""

import torch
from safetensors.torch import load_file

from agents import training
from agents.factory import build_world
from composable_rl.config import Config, from_dict
from composable_rl.run.capture import CapturedStep
from composable_rl.run.checkpoint import MODEL_FILE
from tests.test_run_safety import TINY


def test_a_captured_step_trains_bit_identical_weights(tmp_path, capsys):
    """Object rooms step in integers, so the compiled step returns exactly what the step does
    and a run with it ends on the same weights as one without."""
    weights = {}
    for graphs in (False, True):
        cfg = from_dict(Config, {**TINY, "device_graphs": graphs})
        training.train(cfg, tmp_path / str(graphs), progress=False)
        weights[graphs] = load_file(tmp_path / str(graphs) / "checkpoints/step_4096" / MODEL_FILE)
    assert weights[True].keys() == weights[False].keys()
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in weights[True])
    assert "device_graphs" not in capsys.readouterr().err


class Branching:
    """A world whose step branches on a value it reads from its tensors: not one graph."""

    num_envs = 2

    def __init__(self) -> None:
        self.position = torch.zeros(self.num_envs)

    def step(self, actions: torch.Tensor) -> tuple:
        if bool((actions > 0).any()):
            self.position += actions
        done = torch.zeros(self.num_envs, dtype=torch.bool)
        return self.position.clone(), self.position[:, None], done, done, {}


def test_a_step_that_does_not_compile_runs_as_written_after_one_warning(capsys):
    world, plain = Branching(), Branching()
    step = CapturedStep(world)
    for actions in (torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.0]), torch.ones(2)):
        assert torch.equal(step(actions)[0], plain.step(actions)[0])
    err = capsys.readouterr().err
    assert err.count("warning: device_graphs: the step of Branching did not compile") == 1
    assert not step.compiled and "the step runs as written" in err


class Doubling:
    """A world whose step compiles, for any shape of actions (each shape compiles anew)."""

    num_envs = 2

    def step(self, actions: torch.Tensor) -> tuple:
        done = torch.zeros(len(actions), dtype=torch.bool)
        return 2 * actions, actions[:, None], done, done, {}


def test_a_step_past_torchs_recompile_limit_runs_as_written(capsys):
    import torch._dynamo

    step = CapturedStep(Doubling())
    with torch._dynamo.config.patch(recompile_limit=1):
        assert torch.equal(step(torch.ones(2))[0], torch.full((2,), 2.0)) and step.compiled
        assert torch.equal(step(torch.ones(3))[0], torch.full((3,), 2.0))  # a second compile
        assert torch.equal(step(torch.ones(4))[0], torch.full((4,), 2.0))
    err = capsys.readouterr().err
    assert err.count("warning: device_graphs: the step of Doubling did not compile") == 1
    assert not step.compiled


def test_a_world_stepped_through_numpy_is_not_compiled(capsys):
    cfg = from_dict(Config, {"env": {"name": "gymnasium", "id": "CartPole-v1", "num_envs": 2}})
    world = build_world(cfg)
    world.reset(0)
    step = CapturedStep(world)
    obs, reward, *_ = step(torch.zeros(2, dtype=torch.long))
    assert obs.shape == (2, 4) and reward.shape == (2, 1) and not step.compiled
    err = capsys.readouterr().err
    assert "device_graphs: GymnasiumWorld keeps its step (capturable = False)" in err
