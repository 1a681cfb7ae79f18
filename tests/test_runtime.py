"""configure_cpu: denormals flushed and batch-sized buffers reused without page faults;
CoreShare: runs on one machine split its cores."""

import subprocess
import sys
import textwrap

import pytest

STEP_FAULTS = textwrap.dedent(
    """
    import resource, torch
    from composable_rl.runtime import configure_cpu
    from envs.object_rooms import ObjectRooms
    tuned = configure_cpu()
    world = ObjectRooms(num_envs=4096, observation="planes")
    world.reset(0)
    actions = torch.zeros(4096, dtype=torch.long)
    for _ in range(3):
        world.step(actions)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        world.step(actions)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    denormal = (torch.tensor([1e-39]) * 1.0).item()
    print(tuned, faults, denormal)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux's")
def test_configure_cpu_keeps_step_buffers_mapped():
    """After configure_cpu, stepping 4096 envs with planes observations (4.8 MB each) costs a
    few page faults, not the ~800 per step of glibc's defaults; denormals become zero."""
    out = subprocess.run(
        [sys.executable, "-c", STEP_FAULTS], capture_output=True, text=True, check=True
    ).stdout.split()
    tuned, faults, denormal = out[0] == "True", float(out[1]), float(out[2])
    page_bytes, observation_bytes = 4096, 4096 * 7 * 13 * 13  # uint8 planes of 4096 envs
    assert tuned
    assert faults < 0.1 * observation_bytes / page_bytes
    assert denormal == 0.0


def test_core_share_splits_cores_between_live_runs(tmp_path):
    from composable_rl.runtime import CoreShare

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
