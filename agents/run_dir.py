"""One process per run directory, and no run directory reused by accident.

A run holds an exclusive lock on the hidden file `.<name>.lock` beside its directory (it exists
before the directory does, so two runs cannot both create it) for as long as it trains; the
file names the holder (pid and start time), which a refused second process prints. The lock is
re-entrant within a process, so a caller that claimed a directory can hand it to `train`.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from composable_rl.config import ConfigError
from composable_rl.run.checkpoint import checkpoint_dir, checkpoints
from composable_rl.run.cli import InUseError

_HELD: dict[Path, IO[str]] = {}


class RunDirBusy(InUseError):
    """Another process trains in this run directory."""


def lock_file(run_dir: Path) -> Path:
    """The lock file of a run directory: hidden, beside it (the same file however the
    directory is reached)."""
    run_dir = run_dir.resolve()
    return run_dir.parent / f".{run_dir.name}.lock"


def _try_lock(run_dir: Path) -> IO[str] | None:
    """The open, exclusively locked lock file of `run_dir` (now naming this process), or None
    when another process holds it."""
    lock = lock_file(run_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = lock.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


@contextmanager
def _holding(key: Path, handle: IO[str]) -> Iterator[None]:
    """Keep `handle`'s lock while the block runs, then release it."""
    _HELD[key] = handle
    try:
        yield
    finally:
        del _HELD[key]
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block (at once if this process holds it already); a
    RunDirBusy naming the holder when another process does."""
    key = run_dir.resolve()
    if key in _HELD:
        yield
        return
    handle = _try_lock(run_dir)
    if handle is None:
        holder = lock_file(run_dir).read_text().strip() or "another process"
        raise RunDirBusy(f"{run_dir} is in use by another run ({holder}); wait for it to end")
    with _holding(key, handle):
        yield


@contextmanager
def fresh_run_dir(parent: Path, name: str) -> Iterator[Path]:
    """Claim `parent/name`, or `name-2`, `name-3`, ... where that one exists or another process
    holds it, for a run that is given no name: two runs started in the same second never share
    a directory. Yields the path, held until the block ends."""
    for k in itertools.count(1):
        run_dir = parent / (name if k == 1 else f"{name}-{k}")
        if run_dir.exists():
            continue
        handle = _try_lock(run_dir)
        if handle is None:
            continue
        if run_dir.exists():  # made by a run that ended between the two checks
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            continue
        with _holding(run_dir.resolve(), handle):
            yield run_dir
        return


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Check `run_dir` for a run that holds its lock; returns whether the run must replace what
    it holds (`overwrite`), which it does only once it is built. A new run refuses a directory
    that holds files unless `overwrite`, and `overwrite` refuses one that holds no run (neither
    config.yaml nor checkpoints). Stale temporary checkpoint directories of a killed run are
    removed, with a note."""
    replace = False
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()):
        is_run = (run_dir / "config.yaml").is_file() or checkpoints(run_dir)
        if not is_run:
            raise ConfigError(
                f"{run_dir} holds files but no run; choose another run_name or runs_dir",
                "run_name",
            )
        if not overwrite:
            advice = f"continue it with --resume {run_dir}, " if checkpoints(run_dir) else ""
            raise ConfigError(
                f"{run_dir} already holds a run: {advice}replace it with --overwrite, or choose "
                "another run_name",
                "run_name",
            )
        replace = True
    tidy_checkpoints(checkpoint_dir(run_dir, 0).parent)
    return replace


def tidy_checkpoints(folder: Path) -> None:
    """Remove the temporary directories of checkpoint writes that a killed run left in
    `folder`, and put back a whole checkpoint moved aside to be replaced (`.NAME.old-*`) where
    the write that replaced it never finished; one note each on stderr."""
    stale = sorted(folder.glob(".*.tmp-*"))
    for old in sorted(folder.glob(".*.old-*")):
        home = folder / old.name[1:].rsplit(".old-", 1)[0]
        if home.exists() or not (old / "meta.json").is_file():
            stale.append(old)
        else:
            old.rename(home)
            print(
                f"restored checkpoint {home.name}, moved aside by a write that never finished",
                file=sys.stderr,
            )
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if stale:
        names = ", ".join(p.name for p in stale)
        print(f"removed {len(stale)} unfinished checkpoint write(s): {names}", file=sys.stderr)
