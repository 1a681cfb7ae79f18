"""configure_cpu: denormals flushed and batch-sized buffers reused without page faults;
CoreShare: runs on one machine split its cores."""

import os
import subprocess
import sys
import textwrap

import pytest

BUFFER_FAULTS = textwrap.dedent(
    """
    import ctypes, resource, statistics, sys, torch
    from composable_rl.run.runtime import M_MMAP_THRESHOLD, configure_cpu
    if sys.argv[1] == "tuned":
        tuned = configure_cpu()
    else:  # glibc's initial threshold, held fixed: every buffer is mapped afresh
        tuned = ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    faults = []
    for _ in range(20):  # a step's pattern: several batch-sized buffers, then all freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffers = [torch.ones(4096 * 7 * 13 * 13, dtype=torch.uint8) for _ in range(4)]
        del buffers
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    denormal = (torch.tensor([1e-39]) * 1.0).item()
    print(tuned, statistics.median(faults[5:]), denormal)
    """
)


def _buffer_faults(mode: str) -> tuple[str, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", BUFFER_FAULTS, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1]), float(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux's")
def test_configure_cpu_keeps_step_buffers_mapped():
    """Four 4.8 MB buffers (uint8 planes of 4096 envs) allocated and freed together fault all
    their pages in again each time when glibc maps them afresh (its initial threshold; its
    dynamic one does so only for some heap layouts), and almost none after configure_cpu
    (median per iteration after warm-up; a rare heap growth is a one-off); denormals become 0."""
    buffer_pages = 4 * 4096 * 7 * 13 * 13 / 4096
    _, mapped_faults, _ = _buffer_faults("mapped")
    tuned, tuned_faults, denormal = _buffer_faults("tuned")
    assert mapped_faults > 0.5 * buffer_pages  # the measurement sees what tuning removes
    assert tuned == "True"
    assert tuned_faults < 0.01 * buffer_pages
    assert denormal == 0.0


def test_core_share_splits_cores_between_live_runs(tmp_path):
    from composable_rl.run.runtime import CoreShare

    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = tmp_path / f"{finished.pid}.0.run"  # a run whose process has ended
    others = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]  # listed as runs below
    try:
        with CoreShare(cores=4, directory=tmp_path) as first:
            assert first.threads() == 4
            (tmp_path / f"{others[0].pid}.a.run").touch()
            assert first.threads() == 2
            with CoreShare(cores=4, directory=tmp_path):  # one process is one run
                assert first.threads() == 2
            for other in others[1:]:
                (tmp_path / f"{other.pid}.b.run").touch()
            assert first.threads() == 1
            for entry in tmp_path.glob("*.[ab].run"):
                entry.unlink()
            assert first.threads() == 4
        assert not list(tmp_path.glob("*.run"))
        stale.touch()
        with CoreShare(cores=2, directory=tmp_path) as alone:
            assert alone.threads() == 2 and not stale.exists()
        for other in others:
            (tmp_path / f"{other.pid}.c.run").touch()
        with CoreShare(cores=4, directory=tmp_path, minimum=2) as given:
            assert given.threads() == 2  # never below the CPUs a scheduler gave it
    finally:
        for other in others:
            other.kill()
            other.wait()


def test_core_share_gives_way_to_load_no_listed_run_owns(tmp_path):
    """Other programs' load read from /proc (a fake one here): busy CPU time of this
    process's CPUs less what the listed processes used, over the time between readings."""
    import os

    from composable_rl.run.runtime import _CLOCK_TICKS, CoreShare

    proc, me = tmp_path / "proc", os.getpid()
    (proc / str(me)).mkdir(parents=True)

    def machine(busy_seconds: float, mine_seconds: float) -> None:
        per_cpu = int(busy_seconds * _CLOCK_TICKS / 2)
        lines = ["cpu 0 0 0 0 0 0 0"] + [f"cpu{c} {per_cpu} 0 0 99 0 0 0 0 0 0" for c in (0, 1)]
        (proc / "stat").write_text("\n".join(lines) + "\n")
        ticks = int(mine_seconds * _CLOCK_TICKS)
        (proc / str(me) / "stat").write_text(f"{me} (python) R 1 2 3 4 5 6 7 8 9 10 {ticks} 0\n")

    share = CoreShare(cores=2, directory=tmp_path / "runs", proc=proc)
    share.cpus = {0, 1}
    with share:
        machine(10.0, 4.0)
        assert share.threads(now=100.0) == 2  # the first reading has nothing to compare
        machine(12.0, 5.0)  # in 1 s: 2 busy cores, 1 of them ours -> 1 core of other load
        assert share.threads(now=101.0) == 1
        machine(100.0, 5.0)  # 0.1 s later, too soon to divide ticks by: the last figure holds
        assert share.threads(now=101.1) == 1 and share.foreign_load(share.live_pids(), 101.2) == 1
        machine(13.8, 6.6)  # then 1.8 busy, 1.6 ours: 0.2 of a core is noise, not load
        assert share.threads(now=102.0) == 2
        machine(15.8, 6.6)  # 2 cores busy, none ours: never below one thread
        assert share.threads(now=103.0) == 1
    share.proc = tmp_path / "nowhere"  # no /proc: no load is seen
    with share:
        assert share.threads(now=104.0) == share.threads(now=105.0) == 2


def test_a_process_that_leaves_the_list_but_computes_on_is_load(tmp_path):
    """A listed process (a zero_shot.py) that leaves the list and goes on computing (its plot)
    is other load at the next reading, not a free core: a run beside it keeps one thread until
    that process stops."""
    from composable_rl.run.runtime import _CLOCK_TICKS, CoreShare

    proc, me, runs = tmp_path / "proc", os.getpid(), tmp_path / "runs"
    other = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (me, other.pid):
            (proc / str(pid)).mkdir(parents=True)

        def machine(busy: float, mine: float, others: float) -> None:
            per_cpu = int(busy * _CLOCK_TICKS / 2)
            lines = [f"cpu{c} {per_cpu} 0 0 99 0 0 0 0 0 0" for c in (0, 1)]
            (proc / "stat").write_text("\n".join(lines) + "\n")
            for pid, seconds in ((me, mine), (other.pid, others)):
                ticks = int(seconds * _CLOCK_TICKS)
                (proc / str(pid) / "stat").write_text(f"{pid} (python) R {'1 ' * 10}{ticks} 0\n")

        share = CoreShare(cores=2, directory=runs, proc=proc)
        share.cpus = {0, 1}
        with share:
            (runs / f"{other.pid}.z.run").touch()
            machine(10.0, 4.0, 3.0)
            assert share.threads(now=100.0) == 1  # two listed processes: a core each
            machine(12.0, 5.0, 4.0)
            assert share.threads(now=101.0) == 1
            (runs / f"{other.pid}.z.run").unlink()  # it leaves the list, and computes on
            machine(14.0, 6.0, 5.0)
            assert share.threads(now=102.0) == 1
            machine(15.0, 7.0, 5.0)  # it has stopped: both cores are this run's
            assert share.threads(now=103.0) == 2
    finally:
        other.kill()
        other.wait()


def test_machine_cores_ignores_omp_num_threads():
    code = "import torch; from composable_rl.run.runtime import machine_cores; "
    code += "print(torch.get_num_threads(), machine_cores())"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    torch_threads, cores = map(int, done.stdout.split())
    assert torch_threads == 1 and cores == len(os.sched_getaffinity(0))


def test_a_run_follows_its_share_between_log_intervals(tmp_path, monkeypatch):
    """A run that another run starts beside drops to its share within a moment, not at its
    next log: here the share halves after the first reading, inside one log interval. The share
    is read before every step and every update (four updates a step here), and once more
    before the evaluation."""
    import torch

    from agents import training
    from composable_rl.config import Config, from_dict
    from composable_rl.replay import TensorReplay
    from composable_rl.run import runtime
    from composable_rl.run.runtime import CoreShare
    from tests.conftest import TINY_WORLD_VALUES as TINY

    samples = []
    sample = TensorReplay.sample
    monkeypatch.setattr(TensorReplay, "sample", lambda *a: samples.append(1) or sample(*a))
    readings = []

    class Halving(CoreShare):
        def threads(self) -> int:
            readings.append(torch.get_num_threads())
            return 2 if len(readings) == 1 else 1

    monkeypatch.setattr(runtime, "FOLLOW_INTERVAL", 0.0)
    cfg = from_dict(Config, {**TINY, "total_steps": 1_536, "log_every": 100_000})
    before = torch.get_num_threads()
    try:
        training.train(cfg, tmp_path / "run", progress=False, share=Halving(directory=tmp_path))
        assert len(readings) > 2 and readings[1] == 2 and set(readings[2:]) == {1}
        steps = 1_536 // TINY["env"]["num_envs"]
        assert len(samples) == 4 * (steps - 1_000 // TINY["env"]["num_envs"])
        assert len(readings) == steps + len(samples) + 1
    finally:
        torch.set_num_threads(before)


def test_a_rollout_follows_its_share_at_every_step(tmp_path, monkeypatch):
    """An evaluation inside a CoreShare (zero_shot.py, an experiment, a run's final evaluation)
    rereads its share before every step, so work that starts beside a long evaluation takes
    its cores from it at once; outside any CoreShare a rollout leaves the threads alone."""
    import torch

    from agents.factory import build_world
    from composable_rl.config import Config, from_dict
    from composable_rl.evaluation import episode_returns
    from composable_rl.run import runtime
    from composable_rl.run.runtime import CoreShare
    from tests.conftest import TINY_WORLD_VALUES as TINY

    world = build_world(from_dict(Config, TINY))
    steps = []
    step = world.step
    monkeypatch.setattr(world, "step", lambda actions: steps.append(1) or step(actions))
    readings = []

    class Counting(CoreShare):
        def threads(self, now: float | None = None) -> int:
            readings.append(1)
            return 1

    def wander(obs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(obs), dtype=torch.long)

    monkeypatch.setattr(runtime, "FOLLOW_INTERVAL", 0.0)
    weights = torch.ones(len(world.head_names))
    before = torch.get_num_threads()
    try:
        with Counting(cores=2, directory=tmp_path):
            episode_returns(world, wander, weights)
            inside = torch.get_num_threads()
        assert len(steps) == world.max_steps and len(readings) == len(steps) and inside == 1
        torch.set_num_threads(2)
        episode_returns(world, wander, weights)
        assert len(readings) == len(steps) // 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_rollouts_follow_the_innermost_share_entered():
    from composable_rl.share import enter_share, follow_share, leave_share

    followed = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def follow(self) -> None:
            followed.append(self.name)

    outer, inner = Named("outer"), Named("inner")
    follow_share()  # outside every share: nothing to follow
    enter_share(outer)
    enter_share(inner)
    follow_share()
    leave_share(inner)
    follow_share()
    leave_share(outer)
    leave_share(outer)  # leaving twice changes nothing
    follow_share()
    assert followed == ["inner", "outer"]
