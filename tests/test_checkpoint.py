"""Checkpoints: round trip, name checks, atomic replacement, discovery and safe loading."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from composable_rl.config import Config, to_dict
from composable_rl.run import checkpoint as ckpt
from composable_rl.run.checkpoint import (
    CheckpointFormatError,
    CheckpointMismatchError,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    load_meta,
    save_checkpoint,
)

HEADS = ["blue", "square"]


class Tiny(nn.Module):
    """Small model with a tied (shared) weight and a non-contiguous buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.out = nn.Linear(3, 3)
        self.tied = self.out
        self.register_buffer("scale", torch.arange(6.0).reshape(2, 3).t())


def trained(seed: int = 0) -> tuple[Tiny, torch.optim.Adam]:
    """A Tiny model and its Adam optimizer after a few steps."""
    torch.manual_seed(seed)
    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model.out(model.body(torch.randn(8, 4))).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def meta(step: int = 10, **extra) -> dict:
    """Meta for a test checkpoint."""
    return {"step": step, "head_names": HEADS, "config": Config(), **extra}


def test_round_trip(tmp_path):
    model, opt = trained(0)
    saved = meta(updates=3, goal_names=["g1"])
    path = save_checkpoint(tmp_path / "ck", model, {"adam": opt}, saved)
    fresh, fresh_opt = trained(1)
    loaded = load_checkpoint(path, fresh, {"adam": fresh_opt}, head_names=HEADS, goal_names=["g1"])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved_state, loaded_state = opt.state_dict(), fresh_opt.state_dict()
    assert saved_state["param_groups"] == loaded_state["param_groups"]
    for key, state in saved_state["state"].items():
        for name, value in state.items():
            other = loaded_state["state"][key][name]
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(other))
    assert loaded["step"] == 10 and loaded["updates"] == 3
    assert loaded["head_names"] == HEADS and loaded["goal_names"] == ["g1"]
    assert loaded["config"] == to_dict(Config())
    assert loaded["format_version"] == ckpt.FORMAT_VERSION
    assert loaded == load_meta(path)
    assert sorted(os.listdir(path)) == ["meta.json", "model.safetensors", "optimizer.pt"]


def test_optimizers_by_name_round_trip_and_must_match(tmp_path):
    model, opt = trained(0)
    second = torch.optim.SGD(model.out.parameters(), lr=0.5, momentum=0.9)
    second.zero_grad()
    model.out(torch.randn(2, 3)).sum().backward()
    second.step()
    path = save_checkpoint(tmp_path / "ck", model, {"adam": opt, "sgd": second}, meta())
    fresh = Tiny()
    adam = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    sgd = torch.optim.SGD(fresh.out.parameters(), lr=0.5, momentum=0.9)
    load_checkpoint(path, fresh, {"sgd": sgd, "adam": adam})
    assert adam.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    momentum = sgd.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(momentum, second.state_dict()["state"][0]["momentum_buffer"])
    with pytest.raises(CheckpointMismatchError, match=r"optimizers \['adam', 'sgd'\] != agent"):
        load_checkpoint(path, Tiny(), {"adam": torch.optim.Adam(Tiny().parameters())})


def test_a_lone_unnamed_optimizer_state_loads_into_a_single_optimizer(tmp_path):
    """Checkpoints written before optimizers were named hold one state dict."""
    model, opt = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    torch.save(opt.state_dict(), path / "optimizer.pt")
    fresh = Tiny()
    adam = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    load_checkpoint(path, fresh, {"online": adam})
    assert adam.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    with pytest.raises(CheckpointMismatchError, match="one unnamed"):
        load_checkpoint(path, Tiny(), {"a": adam, "b": adam})


def test_without_optimizer(tmp_path):
    model, _ = trained()
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    assert load_checkpoint(path, Tiny())["goal_names"] == []
    with pytest.raises(FileNotFoundError, match="optimizer.pt"):
        load_checkpoint(path, Tiny(), {"adam": torch.optim.Adam(Tiny().parameters())})


def test_meta_requires_core_keys(tmp_path):
    model, _ = trained()
    with pytest.raises(ValueError, match="head_names"):
        save_checkpoint(tmp_path / "ck", model, None, {"step": 1, "config": {}})
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize(
    ("kind", "wanted"),
    [("heads", ["blue", "circle"]), ("heads", ["square", "blue"]), ("goals", ["g2"])],
)
def test_mismatched_names_are_refused(tmp_path, kind, wanted):
    model, _ = trained()
    path = save_checkpoint(tmp_path / "ck", model, None, meta(goal_names=["g1"]))
    saved = {"heads": HEADS, "goals": ["g1"]}[kind]
    target = Tiny()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, target, **{f"{kind[:-1]}_names": wanted})
    assert f"checkpoint {kind} {saved!r} != agent {kind} {wanted!r}" in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load_checkpoint(tmp_path / "nope", Tiny())
    model, _ = trained()
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_checkpoint(path, Tiny())
    (path / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta.json"):
        load_meta(path)


def test_unsupported_format_version(tmp_path):
    model, _ = trained()
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    data = json.loads((path / "meta.json").read_text())
    data["format_version"] = 99
    (path / "meta.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointFormatError, match="format_version 99"):
        load_checkpoint(path, Tiny())


def test_existing_checkpoint_survives_failed_save(tmp_path, monkeypatch):
    model, opt = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, {"adam": opt}, meta(step=1))

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    other, other_opt = trained(1)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, other, {"adam": other_opt}, meta(step=2))
    assert os.listdir(tmp_path) == ["ck"]
    restored = Tiny()
    assert load_checkpoint(path, restored, head_names=HEADS)["step"] == 1
    assert torch.equal(restored.body.weight, model.body.weight)


def test_failed_rename_restores_old_checkpoint(tmp_path, monkeypatch):
    model, _ = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, None, meta(step=1))
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in str(src):
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(ckpt.os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(path, model, None, meta(step=2))
    assert os.listdir(tmp_path) == ["ck"]
    assert load_meta(path)["step"] == 1


def test_overwrite_replaces_and_cleans_up(tmp_path):
    model, _ = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, None, meta(step=1))
    save_checkpoint(path, model, None, meta(step=2))
    assert load_meta(path)["step"] == 2
    assert os.listdir(tmp_path) == ["ck"]


def test_shared_and_non_contiguous_tensors(tmp_path):
    model, _ = trained()
    assert model.tied.weight.data_ptr() == model.out.weight.data_ptr()
    assert not model.scale.is_contiguous()
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    restored = Tiny()
    load_checkpoint(path, restored)
    assert torch.equal(restored.scale, model.scale)
    assert torch.equal(restored.tied.weight, model.out.weight)


def test_latest_checkpoint_picks_largest_step(tmp_path):
    run = tmp_path / "run"
    assert latest_checkpoint(run) is None
    model, _ = trained()
    for step in (900, 10_000, 2_000):
        save_checkpoint(checkpoint_dir(run, step), model, None, meta(step=step))
    (run / "checkpoints" / ".step_99999.tmp-abc").mkdir()
    (run / "checkpoints" / "step_50000").mkdir()
    (run / "checkpoints" / "notes.txt").write_text("x")
    assert latest_checkpoint(run) == run / "checkpoints" / "step_10000"


class Payload:
    """Object whose unpickling would create a marker directory."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_payload_in_optimizer_file_is_not_executed(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path / "ck", model, {"adam": opt}, meta())
    marker = tmp_path / "pwned"
    torch.save({"state": {0: Payload(str(marker))}, "param_groups": []}, path / "optimizer.pt")
    with pytest.raises(CheckpointFormatError, match="weights-only"):
        load_checkpoint(path, Tiny(), {"adam": torch.optim.Adam(Tiny().parameters())})
    assert not marker.exists()


def test_weights_of_another_shape_are_refused_before_loading(tmp_path):
    small, large = torch.nn.Linear(3, 2), torch.nn.Linear(4, 2)
    path = save_checkpoint(
        tmp_path / "ckpt", small, None, {"step": 1, "head_names": ["a"], "config": {}}
    )
    before = large.weight.clone()
    with pytest.raises(CheckpointMismatchError, match=r"weight: checkpoint \(2, 3\) != model"):
        load_checkpoint(path, large)
    assert torch.equal(large.weight, before)


def test_non_finite_weights_are_never_written_nor_loaded(tmp_path):
    model, opt = trained(0)
    with torch.no_grad():
        model.body.weight[0, 0] = float("nan")
    with pytest.raises(ckpt.NonFiniteError, match=r"non-finite values in body.weight"):
        save_checkpoint(tmp_path / "ck", model, {"adam": opt}, meta())
    assert not list(tmp_path.iterdir())
    good, _ = trained(1)
    path = save_checkpoint(tmp_path / "ok", good, None, meta())
    weights = {k: v.clone() for k, v in good.state_dict().items()}
    weights["out.bias"][1] = float("inf")
    save_file(
        {k: v.contiguous() for k, v in weights.items() if k != "tied.weight"},
        str(path / ckpt.MODEL_FILE),
    )
    with pytest.raises(CheckpointFormatError, match="non-finite values in out.bias"):
        load_checkpoint(path, trained(2)[0])


@pytest.mark.parametrize("name", [ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE])
def test_truncated_files_are_format_errors(tmp_path, name):
    model, opt = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, {"adam": opt}, meta())
    file = path / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    fresh, fresh_opt = trained(1)
    with pytest.raises(CheckpointFormatError, match=f"{name} is damaged"):
        load_checkpoint(path, fresh, {"adam": fresh_opt})


@pytest.mark.parametrize("missing", ["config", "step"])
def test_meta_without_config_or_step_is_a_format_error(tmp_path, missing):
    model, _ = trained(0)
    path = save_checkpoint(tmp_path / "ck", model, None, meta())
    data = json.loads((path / ckpt.META_FILE).read_text())
    del data[missing]
    (path / ckpt.META_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointFormatError, match=rf"lacks the keys \['{missing}'\]"):
        load_meta(path)


def test_run_state_round_trip_and_damage(tmp_path):
    model, _ = trained(0)
    state = {"replay.obs": torch.arange(12).reshape(3, 4), "rng": torch.ByteTensor([1, 2])}
    path = save_checkpoint(tmp_path / "ck", model, None, meta(), run_state=state)
    loaded = ckpt.load_run_state(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert ckpt.load_run_state(save_checkpoint(tmp_path / "plain", model, None, meta())) is None
    file = path / ckpt.RUN_STATE_FILE
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(CheckpointFormatError, match=f"{ckpt.RUN_STATE_FILE} is damaged"):
        ckpt.load_run_state(path)


def test_prune_keeps_the_newest(tmp_path):
    model, _ = trained(0)
    for step in (5, 40, 300, 2000):
        save_checkpoint(checkpoint_dir(tmp_path, step), model, None, meta(step))
    assert ckpt.prune_checkpoints(tmp_path, 0) == []
    removed = ckpt.prune_checkpoints(tmp_path, 2)
    assert [p.name for p in removed] == ["step_40", "step_5"]
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step_2000", "step_300"]
