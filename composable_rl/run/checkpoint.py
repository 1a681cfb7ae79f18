"""Atomic checkpoint directories: safetensors weights, weights-only optimizer states (any number,
by name), JSON meta, and optionally the compressed state of the run (replay, random-number
states, open episodes).

A checkpoint is written into a temporary directory and renamed into place, so `step_<N>` always
holds a complete checkpoint or none; one with a non-finite value is never written or loaded.
"""

import dataclasses
import json
import os
import pickle
import re
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_tensors
from torch import nn

from composable_rl.config import to_dict
from composable_rl.run.cli import OutputWriteError, full_disk

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
META_FILE = "meta.json"
RUN_STATE_FILE = "run_state.safetensors.zz"  # zlib-compressed safetensors
_REQUIRED_META = ("step", "head_names", "config")
_STEP_DIR = re.compile(r"step_(\d+)")


class CheckpointMismatchError(ValueError):
    """The checkpoint's head or goal names differ from the agent's (names or order)."""


class CheckpointFormatError(ValueError):
    """The checkpoint has an unsupported format version or content that cannot be read safely."""


class CheckpointWriteError(OutputWriteError):
    """A checkpoint that could not be written (a full disk, a quota); nothing of it is left."""


class NonFiniteError(ValueError):
    """Weights or optimizer state hold NaN or infinity: the run that made them diverged."""


def nonfinite(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinity."""
    return [
        name
        for name, value in tensors
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Conventional checkpoint location `<run_dir>/checkpoints/step_<step>`."""
    return Path(run_dir) / "checkpoints" / f"step_{step}"


Optimizers = Mapping[str, torch.optim.Optimizer]


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizers: Optimizers | None,
    meta: Mapping[str, Any],
    run_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically, so `path` always holds a complete checkpoint (or none).

    `optimizers` (by name, e.g. a learner's critic and actor optimizers) are stored together in
    one file. Refuses (NonFiniteError, nothing written) weights or optimizer state with NaN or
    infinity. `run_state` (tensors by name) is stored compressed beside the weights. Files and
    the directory get the permissions the user's umask gives new files.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a checkpoint directory")
    meta_text = json.dumps(_full_meta(meta), indent=2)
    weights = _portable_state(model)
    optimizer_state = (
        {name: optimizer.state_dict() for name, optimizer in optimizers.items()}
        if optimizers is not None
        else None
    )
    bad = nonfinite(weights.items()) + nonfinite(_optimizer_tensors(optimizer_state))
    if bad:
        raise NonFiniteError(
            f"refusing to write checkpoint {path}: non-finite values in {_some(bad)}"
        )
    mask, tmp = _umask(), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        tmp.chmod(0o777 & ~mask)
        save_file(weights, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        _fsync(tmp / MODEL_FILE)
        if optimizer_state is not None:
            with open(tmp / OPTIMIZER_FILE, "wb") as f:
                torch.save(optimizer_state, f)
            _fsync(tmp / OPTIMIZER_FILE)
        if run_state is not None:
            _write_run_state(tmp / RUN_STATE_FILE, run_state)
        (tmp / META_FILE).write_text(meta_text)
        _fsync(tmp / META_FILE)
        for file in tmp.iterdir():  # safetensors creates its files with mode 0600
            file.chmod(0o666 & ~mask)
        _fsync(tmp)
        _move_into_place(tmp, path)
    except (OSError, SafetensorError, RuntimeError) as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        optimizer = (t for _, t in _optimizer_tensors(optimizer_state))
        needed = _tensor_bytes(weights.values(), optimizer)
        if run_state is not None:
            needed += _tensor_bytes(run_state.values())
        try:
            free = f"{shutil.disk_usage(path.parent).free:,} are free there"
        except OSError:
            free = "free space unknown"
        raise CheckpointWriteError(
            f"cannot write checkpoint {path}: {write_failure(err)} (it needs up to "
            f"{needed:,} bytes; {free})"
        ) from err
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_failure(err: BaseException) -> str:
    """Why a write failed, in a few words: the OS's reason for a full disk or quota, else the
    first line of the error."""
    lines = str(err).strip().splitlines()
    return full_disk(err) or (lines[0] if lines else type(err).__name__)


def _tensor_bytes(*groups: Iterable[torch.Tensor]) -> int:
    """Bytes of every tensor of the groups, uncompressed."""
    return sum(t.numel() * t.element_size() for group in groups for t in group)


def load_meta(path: str | Path) -> dict[str, Any]:
    """Read and version-check a checkpoint's `meta.json` without touching its tensors."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    meta_file = _require(path, META_FILE)
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointFormatError(f"{meta_file} is not valid JSON: {err}") from err
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path}: unsupported checkpoint format_version {version!r}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    missing = [key for key in _REQUIRED_META if key not in meta]
    if missing:
        raise CheckpointFormatError(f"{meta_file} lacks the keys {missing}")
    if not isinstance(meta["step"], int) or not isinstance(meta["config"], dict):
        raise CheckpointFormatError(f"{meta_file}: 'step' must be an integer, 'config' a mapping")
    return meta


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizers: Optimizers | None = None,
    head_names: Sequence[str] | None = None,
    goal_names: Sequence[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Restore weights (and the named optimizers' states) after checking head and goal names;
    return meta.

    A damaged file (truncated, not safetensors) or a non-finite value is a CheckpointFormatError
    naming the file; optimizers saved under other names are a CheckpointMismatchError; nothing
    is loaded then. A checkpoint that holds one optimizer's state alone (the earlier format)
    fits a model with one optimizer.
    """
    path = Path(path)
    meta = load_meta(path)
    _check_names("heads", meta.get("head_names", []), head_names)
    _check_names("goals", meta.get("goal_names", []), goal_names)
    model_file = _require(path, MODEL_FILE)
    optimizer_file = _require(path, OPTIMIZER_FILE) if optimizers is not None else None
    try:
        weights = load_file(model_file, device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise CheckpointFormatError(f"{model_file} is damaged: {err}") from err
    optimizer_state = None
    if optimizer_file is not None and optimizers is not None:
        optimizer_state = _named_states(
            _load_weights_only(optimizer_file, map_location), list(optimizers), optimizer_file
        )
    bad = nonfinite(weights.items()) + nonfinite(_optimizer_tensors(optimizer_state))
    if bad:
        raise CheckpointFormatError(
            f"{path} holds non-finite values in {_some(bad)} (written by a run that diverged)"
        )
    _check_shapes(weights, model.state_dict())
    model.load_state_dict(weights)
    if optimizers is not None and optimizer_state is not None:
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(optimizer_state[name])
    return meta


def _named_states(saved: Any, names: list[str], file: Path) -> dict[str, Any]:
    """The optimizer states of `saved` by name, checked against the wanted `names`; a single
    state dict (the earlier format) is the state of a lone optimizer."""
    if not isinstance(saved, dict):
        raise CheckpointFormatError(f"{file} holds a {type(saved).__name__}, not optimizer states")
    if "param_groups" in saved and len(names) == 1:
        return {names[0]: saved}
    if "param_groups" in saved or sorted(saved) != sorted(names):
        found = ["(one unnamed)"] if "param_groups" in saved else sorted(saved)
        raise CheckpointMismatchError(
            f"checkpoint optimizers {found} != agent optimizers {sorted(names)} "
            "(was it saved by another head type?)"
        )
    return saved


def _check_shapes(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> None:
    """Refuse, before touching the model, weights whose names or shapes do not fit it."""
    problems = [f"missing {k}" for k in current if k not in saved]
    problems += [f"unexpected {k}" for k in saved if k not in current]
    problems += [
        f"{k}: checkpoint {tuple(saved[k].shape)} != model {tuple(v.shape)}"
        for k, v in current.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if problems:
        shown = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
        raise CheckpointMismatchError(
            f"checkpoint weights do not fit this model (was it built from another config?): {shown}"
        )


def load_run_state(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The run state saved with checkpoint `path`, or None if it was saved without one."""
    file = Path(path) / RUN_STATE_FILE
    if not file.is_file():
        return None
    try:
        return load_tensors(zlib.decompress(file.read_bytes()))
    except (zlib.error, SafetensorError) as err:
        raise CheckpointFormatError(f"{file} is damaged: {err}") from err


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete `step_<N>` checkpoints under `<run_dir>/checkpoints`, newest (largest N)
    first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [
        (int(match.group(1)), entry)
        for entry in root.iterdir()
        if (match := _STEP_DIR.fullmatch(entry.name)) and (entry / META_FILE).is_file()
    ]
    return [entry for _, entry in sorted(found, reverse=True)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete `step_<N>` checkpoint with the largest N under `<run_dir>/checkpoints`."""
    found = checkpoints(run_dir)
    return found[0] if found else None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the `keep_last` newest checkpoints (0 keeps all); returns those deleted."""
    if keep_last <= 0:
        return []
    stale = checkpoints(run_dir)[keep_last:]
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    return stale


def _full_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Meta with required keys checked, defaults filled and the config as a plain dict."""
    missing = [key for key in _REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks required keys {missing}")
    full = {"goal_names": [], **meta, "format_version": FORMAT_VERSION}
    full["step"] = int(full["step"])
    full["head_names"] = [str(name) for name in full["head_names"]]
    full["goal_names"] = [str(name) for name in full["goal_names"]]
    if dataclasses.is_dataclass(full["config"]):
        full["config"] = to_dict(full["config"])
    return full


def _optimizer_tensors(
    states: Mapping[str, Mapping[str, Any]] | None,
) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of the per-parameter state of optimizer state dicts by name."""
    if states is None:
        return []
    return [
        (f"optimizer.{name}.state.{index}.{key}", value)
        for name, state in states.items()
        for index, slots in state.get("state", {}).items()
        for key, value in slots.items()
        if isinstance(value, torch.Tensor)
    ]


def _some(names: Sequence[str]) -> str:
    """Up to three names and how many more, for one-line messages."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_run_state(file: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Tensors by name as zlib-compressed safetensors (fast level: replay is large)."""
    tensors = {
        name: value.detach().cpu().clone(memory_format=torch.contiguous_format)
        for name, value in state.items()
    }
    file.write_bytes(zlib.compress(save_tensors(tensors), 1))
    _fsync(file)


def _portable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict as independent contiguous CPU tensors (safetensors rejects shared storage)."""
    state = {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            raise TypeError(
                f"state_dict entry {name!r} is a {kind}; safetensors stores tensors only"
            )
        state[name] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
    return state


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`, first moving any existing `path` aside and removing it after."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    _fsync(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _require(path: Path, name: str) -> Path:
    """Path of file `name` in checkpoint `path`; a FileNotFoundError names it when missing."""
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {path} is missing {name}")
    return file


def _check_names(kind: str, saved: Sequence[str], wanted: Sequence[str] | None) -> None:
    """Refuse a checkpoint whose head/goal names differ from the caller's, naming both sets."""
    if wanted is not None and list(wanted) != list(saved):
        raise CheckpointMismatchError(
            f"checkpoint {kind} {list(saved)!r} != agent {kind} {list(wanted)!r} "
            "(names and order must match)"
        )


def _load_weights_only(file: Path, map_location: str | torch.device) -> Any:
    """torch.load restricted to tensors and plain containers; never runs pickled code."""
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointFormatError(
            f"{file} holds objects outside torch's weights-only allowlist; refusing to load it"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointFormatError(f"{file} is damaged: {err}") from err
