"""Process-wide CPU settings: memory and denormals (applied once by the command-line tools) and
the share of the cores a training run takes when other runs are live on the same machine."""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

import torch

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
HEAP_UP_TO = 32 << 20  # glibc's largest mmap threshold on 64-bit: buffers up to 32 MiB
KEEP_FREE = 1 << 30  # free heap memory kept instead of handed back to the kernel
DEFAULT_THREADS = torch.get_num_threads()  # torch's choice for this machine, before any change


def configure_cpu() -> bool:
    """Flushes denormals to zero and keeps freed memory in glibc's heap; True if malloc was tuned.

    Every step allocates and frees batch-sized buffers (observations, activations, gradients).
    By default glibc maps each one above 128 KiB afresh and returns it on free, so every step
    page-faults its buffers in again: about 2,600 faults per step of 4096 envs with planes
    observations, which made that step three times slower. Serving them from a heap that keeps
    its free memory removes the faults. Denormals in Adam's state would otherwise cost CPU time.
    """
    torch.set_flush_denormal(True)
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_FREE)
    )


class CoreShare:
    """Runs on one machine split its cores: each takes cores // (live runs) torch threads.

    Inside `with`, this run is listed in a per-user directory of live runs (a file named by its
    process id; files of dead processes are ignored and removed). OpenMP threads that wait for
    work spin on their core, so two runs of two threads each on two cores starve each other
    (about 25% of solo speed each); one thread each keeps both near solo speed, and a run alone
    keeps every core. `minimum` keeps at least that many threads (a sweep trial keeps the CPUs
    Ray gave it). `threads()` is cheap enough for a run to recheck twice a second.
    """

    def __init__(
        self, cores: int | None = None, directory: Path | None = None, minimum: int = 1
    ) -> None:
        self.cores = cores or DEFAULT_THREADS
        self.minimum = minimum
        self.directory = directory or Path(tempfile.gettempdir()) / f"composable_rl-{os.getuid()}"
        self.entry = self.directory / f"{os.getpid()}.{uuid.uuid4().hex[:8]}.run"

    def __enter__(self) -> CoreShare:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.entry.touch()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.entry.unlink(missing_ok=True)

    def live_runs(self) -> int:
        """Runs listed whose process is alive (this one included); stale entries are removed."""
        live = 0
        for entry in self.directory.glob("*.run"):
            pid = entry.name.split(".")[0]
            if pid.isdigit() and _alive(int(pid)):
                live += 1
            else:
                entry.unlink(missing_ok=True)
        return max(live, 1)

    def threads(self) -> int:
        """This run's share of the cores, at least `minimum` threads (e.g. the CPUs a scheduler
        gave it)."""
        return max(self.minimum, self.cores // self.live_runs())


def machine_cores() -> int:
    """The logical CPUs this process may run on; unlike torch's default threads, not lowered
    by OMP_NUM_THREADS, which Ray sets in its workers to the CPUs each was given."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
