"""Smoke test of the throughput benchmark: every category measured, rows in the JSON schema."""

import json

import pytest
import torch

from bench.throughput import AROUND, main

CATEGORIES = {"env-only", "acting", "update", "end-to-end", "sb3-dqn"}


def test_quick_benchmark_rows(tmp_path, capsys):
    """--quick returns and writes rows of exactly four keys, every category, positive values;
    its short training runs do not print their schedule warnings."""
    path = tmp_path / "b.json"
    rows = main(["--quick", "--json", str(path)])
    assert "too few to learn" not in capsys.readouterr().err
    assert json.loads(path.read_text()) == rows
    assert all(set(r) == {"what", "setting", "value", "unit"} for r in rows)
    assert {r["what"] for r in rows} == CATEGORIES
    end_to_end = [r for r in rows if r["what"] == "end-to-end" and r["unit"] == "env-steps/s"]
    assert [str(r["setting"]).split(", ")[1] for r in end_to_end] == [
        "quickstart N=1024",
        "quickstart N=1024",
        "quickstart with N=64",
        "quickstart with N=64",
    ]
    numeric = [r["value"] for r in rows if not isinstance(r["value"], str)]
    assert numeric and all(v > 0 for v in numeric)
    (ratio,) = [r for r in rows if str(r["setting"]).startswith("end-to-end / update limit")]
    (limit,) = [r for r in rows if str(r["setting"]).endswith(AROUND) and r["unit"] == "samples/s"]
    assert (
        str(limit["setting"]).startswith("quickstart network") and "batch 1024," in limit["setting"]
    )
    assert ratio["value"] == pytest.approx(end_to_end[0]["value"] / limit["value"])
    (drift,) = [r for r in rows if str(r["setting"]).endswith(f"{AROUND}: after / before")]
    assert drift["unit"] == "x"


def test_captured_rows_and_their_ratio_to_the_update_limit():
    """--device-graphs adds env-only rows for the observations whose step compiles and an
    end-to-end run at replay ratio 1 with its own update limit and ratio, beside the others."""
    from bench.throughput import (
        CAPTURED,
        QUICK,
        bench_end_to_end,
        bench_env,
        update_limit_ratio,
    )

    rows = bench_env(QUICK, captured=True)
    assert [r["setting"] for r in rows] == [
        f"N=4096, obs=indices, four_rooms, random placement, {CAPTURED}"
    ]
    rows = bench_end_to_end(QUICK, captured=True)
    assert [r["unit"] for r in rows] == ["env-steps/s", "samples/s", "x"]
    assert all(CAPTURED in str(r["setting"]) for r in rows)
    plain = {**rows[0], "setting": str(rows[0]["setting"]).replace(f", {CAPTURED}", "")}
    limit = {**rows[1], "setting": str(rows[1]["setting"]).replace(f", {CAPTURED}", "")}
    ratios = update_limit_ratio([{**plain, "value": 50.0}, {**limit, "value": 100.0}, *rows])
    assert [r["value"] for r in ratios] == [0.5, pytest.approx(rows[0]["value"] / rows[1]["value"])]
    assert CAPTURED not in str(ratios[0]["setting"]) and CAPTURED in str(ratios[1]["setting"])


def test_a_timed_run_hides_only_its_schedule_warnings(capsys):
    """The end-to-end runs' expected schedule warnings are left out, any other warning is not."""
    from bench.throughput import train_seconds

    short = ["total_steps=2048", "replay.learning_starts=1024", "replay.replay_ratio=1"]
    assert train_seconds([*short, "device_graphs=true", "env.observation=planes"]) > 0
    err = capsys.readouterr().err
    assert "too few to learn" not in err and "never be updated" not in err
    assert "device_graphs: ObjectRooms keeps its step" in err


def test_a_target_missed_by_a_hair_does_not_print_as_the_target(capsys):
    from bench.throughput import Target, report, row

    report(
        [row("what", "setting", 1.0, "x")],
        [Target("pair", 0.6995, ">=", 0.7), Target("solo", 0.7, ">=", 0.7)],
        None,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "  MISSED  pair: 0.6995 (target >= 0.7)",
        "  met     solo: 0.7 (target >= 0.7)",
    ]


def test_a_device_this_machine_lacks_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: nothing to refuse")
    with pytest.raises(SystemExit) as stop:
        main(["--quick", "--device", "cuda"])
    assert stop.value.code == 2
    assert "--device cuda: this torch build sees no CUDA device" in capsys.readouterr().err


def test_a_run_s_speed_counts_a_slow_stretch_for_as_long_as_it_lasted(tmp_path):
    """Log points at 4,000 then 400 env-steps/s over equal steps: the run's speed is the steps
    over the time they took (the first interval, before updates, left out), not a median."""
    from bench.shared_cores import run_sps
    from composable_rl.run.logging import Logger

    with Logger(tmp_path) as logger:
        for step, sps in ((5_120, 18_000.0), (10_240, 4_000.0), (15_360, 400.0)):
            logger.scalar("charts/SPS", sps, step)
    assert run_sps(tmp_path) == pytest.approx(10_240 / (5_120 / 4_000 + 5_120 / 400))


def test_shared_cores_bench_reports_a_pair_and_other_work_against_solo(tmp_path):
    from bench.shared_cores import main as shared_cores
    from bench.shared_cores import targets

    path = tmp_path / "shared.json"
    rows = shared_cores(["--steps", "4096", "--json", str(path)])
    assert json.loads(path.read_text()) == rows
    solo, *others = (r["value"] for r in rows if r["unit"] == "env-steps/s")
    assert "mean of one before and one after the others" in rows[0]["setting"]
    (drift,) = (r for r in rows if r["setting"].endswith("after / before"))
    assert drift["unit"] == "x" and drift["value"] > 0
    fractions = [r for r in rows if r["setting"].endswith("/ solo")]
    assert len(others) == len(fractions) == 4 and solo > 0
    assert [r["value"] for r in fractions] == [pytest.approx(p / solo) for p in others]
    assert "beside a zero_shot.py --all-boolean loop" in fractions[2]["setting"]
    assert "beside a CPU burner" in fractions[3]["setting"]
    assert [t.label for t in targets(rows)] == [r["setting"] for r in fractions]


def test_multi_objective_bench_scores_ours_and_names_the_missing_peer(
    tmp_path, capsys, monkeypatch
):
    """A tiny budget on four-room: our row has expected utility, wall-clock and steps; without
    morl-baselines the peers are skipped with the install line, with it they get rows."""
    from bench import multi_objective, peers

    monkeypatch.setattr(peers, "peer_available", lambda: "install the extra")
    monkeypatch.setattr(multi_objective, "peer_available", lambda: "install the extra")
    path = tmp_path / "mo.json"
    rows = multi_objective.main(
        [
            "--steps",
            "400",
            "--envs",
            "four-room-v0",
            "--divisions",
            "1",
            "--episodes",
            "1",
            "--json",
            str(path),
        ]
    )
    assert json.loads(path.read_text()) == rows
    (row,) = rows
    assert (row["env"], row["agent"], row["steps"]) == ("four-room-v0", "successor features", 400)
    assert row["wall_s"] > 0 and 0 <= row["eu"] <= 1  # four-room pays at most 1 per head
    assert "peers skipped: install the extra" in capsys.readouterr().out


def test_continuous_bench_reports_ours_against_sb3_and_the_cost_of_heads(tmp_path):
    from bench.continuous import main as continuous

    path = tmp_path / "c.json"
    rows = continuous(["--quick", "--json", str(path)])
    assert json.loads(path.read_text()) == rows
    assert [r["what"] for r in rows if r["unit"] == "env-steps/s"] == ["ours-sac", "sb3-sac"]
    one, three, ratio = (r["value"] for r in rows if r["what"] == "update")
    assert one > 0 and three > 0 and ratio == pytest.approx(one / three)
    if not isinstance(rows[1]["value"], str):  # SB3 installed (extra bench)
        assert rows[2]["value"] == pytest.approx(rows[0]["value"] / rows[1]["value"])


def test_peers_refuse_unknown_names_and_envs():
    from bench.peers import peer_available, train_peer

    message = peer_available()
    assert message is None or 'pip install -e ".[peers]"' in message
    with pytest.raises(ValueError, match="unknown peer"):
        train_peer("DQN", "four-room-v0", 10, 0.95, 0)
    with pytest.raises(ValueError, match="unsupported env"):
        train_peer("Envelope", "CartPole-v1", 10, 0.95, 0)
    with pytest.raises(ValueError, match=r"unknown peer 'Envelope' for mo-hopper-v5.*CAPQL"):
        train_peer("Envelope", "mo-hopper-v5", 10, 0.99, 0)


def test_sweep_bench_reports_wall_clock_and_speed_against_solo_runs(tmp_path):
    pytest.importorskip("ray", reason="the sweep bench needs the optional extra .[sweep]")
    from bench.sweep_speed import main as sweep_speed

    path = tmp_path / "sweep.json"
    rows = sweep_speed(["--seeds", "2", "--steps", "2048", "--json", str(path)])
    assert json.loads(path.read_text()) == rows
    sequential, sweep, ratio = (r["value"] for r in rows[:3])
    assert ratio == pytest.approx(sweep / sequential) and sequential > 0
    solo, one_thread, *pair = (r["value"] for r in rows if r["unit"] == "env-steps/s")
    fractions = [r["value"] for r in rows if r["unit"] == "x speed"]
    assert len(pair) == 2 and fractions == [pytest.approx(p / solo) for p in pair]
    assert next(r["value"] for r in rows if r["unit"] == "x") == pytest.approx(one_thread / solo)


def test_the_gpu_script_names_its_device_or_stops_in_one_line(tmp_path):
    import subprocess

    from bench.device_info import describe

    assert describe("cpu").startswith(f"torch {torch.__version__} on the CPU")
    if torch.cuda.is_available():
        assert torch.cuda.get_device_name() in describe("cuda")
        return
    done = subprocess.run(
        ["bash", "bench/gpu.sh", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"device_info.py: device: cuda, but this torch build ({torch.__version__}) sees no CUDA "
        "device (train with device: cpu; evaluate a GPU run with zero_shot.py --device cpu)\n"
    )
