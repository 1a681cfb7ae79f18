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
    with CoreShare(cores=4, directory=tmp_path) as first:
        assert first.threads() == 4
        with CoreShare(cores=4, directory=tmp_path) as second:
            assert first.threads() == second.threads() == 2
            with CoreShare(cores=4, directory=tmp_path), CoreShare(cores=4, directory=tmp_path):
                assert first.threads() == 1
        assert first.threads() == 4
    assert not list(tmp_path.glob("*.run"))
    stale.touch()
    with CoreShare(cores=2, directory=tmp_path) as alone:
        assert alone.threads() == 2 and not stale.exists()
    others = [CoreShare(cores=4, directory=tmp_path) for _ in range(2)]
    with CoreShare(cores=4, directory=tmp_path, minimum=2) as given, others[0], others[1]:
        assert given.threads() == 2  # never below the CPUs a scheduler gave it


def test_machine_cores_ignores_omp_num_threads():
    code = "import torch; from composable_rl.run.runtime import machine_cores; "
    code += "print(torch.get_num_threads(), machine_cores())"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    torch_threads, cores = map(int, done.stdout.split())
    assert torch_threads == 1 and cores == len(os.sched_getaffinity(0))


def test_a_run_follows_its_share_between_log_intervals(tmp_path, monkeypatch):
    """A run that another run starts beside drops to its share within a moment, not at its
    next log: here the share halves after the first reading, inside one log interval."""
    import torch

    from agents import training
    from composable_rl.config import Config, from_dict
    from composable_rl.run.runtime import CoreShare
    from tests.conftest import TINY_WORLD_VALUES as TINY

    readings = []

    class Halving(CoreShare):
        def threads(self) -> int:
            readings.append(torch.get_num_threads())
            return 2 if len(readings) == 1 else 1

    monkeypatch.setattr(training, "SHARE_CHECK_SECONDS", 0.0)
    cfg = from_dict(Config, {**TINY, "total_steps": 1_536, "log_every": 100_000})
    before = torch.get_num_threads()
    try:
        training.train(cfg, tmp_path / "run", progress=False, share=Halving(directory=tmp_path))
        assert len(readings) > 2 and readings[1] == 2 and set(readings[2:]) == {1}
    finally:
        torch.set_num_threads(before)
