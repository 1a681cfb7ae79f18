"""Process-wide CPU settings: memory and denormals (applied once by the command-line tools) and
the share of the cores a training run takes when other runs are live on the same machine."""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import torch

from composable_rl.share import enter_share, leave_share

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
    """Runs on one machine split its cores, and give way to work that is not theirs.

    Inside `with`, this process is listed in a per-user directory of live runs (a file named by
    its process id; files of dead processes are ignored and removed). OpenMP threads that wait
    for work spin on their core, so two runs of two threads each on two cores starve each other
    (about 25% of solo speed each); one thread each keeps both near solo speed, and a run alone
    keeps every core. Each listed process takes cores // (listed processes) threads, and no more
    than the cores that other programs leave free: on Linux, the busy time of this process's
    CPUs (`/proc/stat`) less what the listed processes used (`/proc/<pid>/stat`), over the time
    since the last reading, is load no listed run owns (a build, a browser, a CPU burner). A
    process counts as listed over an interval only if it was listed at both of its readings, so
    a process that leaves the list while it still computes (a `zero_shot.py` drawing its plot)
    is load, not a free core, and one that joins it counts from its next interval.
    `minimum` keeps at least that many threads (a sweep trial keeps the CPUs Ray gave it).
    `follow` applies `threads()`, rereading it at most twice a second;
    leaving the `with` gives back the thread count found on entering it.
    """

    def __init__(
        self,
        cores: int | None = None,
        directory: Path | None = None,
        minimum: int = 1,
        proc: Path = Path("/proc"),
    ) -> None:
        self.cores = cores or DEFAULT_THREADS
        self.minimum = minimum
        self.directory = directory or Path(tempfile.gettempdir()) / f"composable_rl-{os.getuid()}"
        self.entry = self.directory / f"{os.getpid()}.{uuid.uuid4().hex[:8]}.run"
        self.proc = proc
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self._last: tuple[float, float, dict[int, float]] | None = None  # when, busy, ours
        self._load = 0.0
        self._due = 0.0  # when `follow` next rereads the share

    def __enter__(self) -> CoreShare:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.entry.touch()
        self._found = torch.get_num_threads()
        enter_share(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Leave the list and give back the thread count found on entering."""
        leave_share(self)
        self.entry.unlink(missing_ok=True)
        if torch.get_num_threads() != self._found:
            torch.set_num_threads(self._found)

    def live_pids(self) -> frozenset[int]:
        """The listed processes that are alive (this one included); stale entries are removed."""
        live = {os.getpid()}
        for entry in self.directory.glob("*.run"):
            pid = entry.name.split(".")[0]
            if pid.isdigit() and _alive(int(pid)):
                live.add(int(pid))
            else:
                entry.unlink(missing_ok=True)
        return frozenset(live)

    def foreign_load(self, pids: frozenset[int], now: float | None = None) -> float:
        """Cores kept busy since the last reading by processes other than those of `pids` that
        were listed at that reading too (0 on the first reading, or where /proc cannot be read).
        Readings closer than LOAD_INTERVAL return the last figure: CPU time counts in ticks of
        10 ms, too coarse to divide by a shorter interval."""
        now = time.monotonic() if now is None else now
        last = self._last
        if last is not None and now - last[0] < LOAD_INTERVAL:
            return self._load
        busy = _busy_seconds(self.proc / "stat", self.cpus)
        ours = {pid: _process_seconds(self.proc / str(pid) / "stat") for pid in pids}
        self._last, self._load = (now, busy, ours), 0.0
        if last is not None and busy >= 0:
            ours_since = sum(ours[pid] - last[2][pid] for pid in ours.keys() & last[2].keys())
            self._load = max(0.0, (busy - last[1]) - ours_since) / (now - last[0])
        return self._load

    def threads(self, now: float | None = None) -> int:
        """This process's share of the cores: cores // listed processes, at most the cores
        that load of no listed process leaves free (at least one), at least `minimum`."""
        pids = self.live_pids()
        foreign = min(int(self.foreign_load(pids, now) + 0.5), self.cores - 1)
        return max(self.minimum, min(self.cores // len(pids), self.cores - foreign))

    def follow(self) -> None:
        """Set torch's threads to `threads()` where that changes them, rereading the share at
        most every FOLLOW_INTERVAL (cheap enough to call at every step of a run)."""
        if (now := time.monotonic()) < self._due:
            return
        self._due = now + FOLLOW_INTERVAL
        if (threads := self.threads()) != torch.get_num_threads():
            torch.set_num_threads(threads)


def _busy_seconds(stat: Path, cpus: set[int]) -> float:
    """Busy (user, nice, system, irq, softirq) CPU seconds since boot of the CPUs `cpus` from a
    /proc/stat file; -1 where it cannot be read."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return -1.0
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
            ticks += user + nice + system + irq + softirq
    return ticks / _CLOCK_TICKS


def _process_seconds(stat: Path) -> float:
    """User and system CPU seconds of a process from its /proc/<pid>/stat (0 if it is gone)."""
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
LOAD_INTERVAL = 0.25  # seconds: the shortest interval other programs' load is measured over
FOLLOW_INTERVAL = 0.5  # seconds between two readings of a run's share (a file listing)


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
