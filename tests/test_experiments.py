"""Smoke test of the linear zero-shot experiment on the session checkpoint."""

from experiments import linear_zero_shot


def test_linear_experiment_reports_composed_and_direct(world_value_run, tmp_path, capsys):
    rows = linear_zero_shot.main(
        [
            "--checkpoint",
            str(world_value_run),
            "--vectors",
            "2",
            "--direct",
            "1",
            "--direct-steps",
            "1280",
            "--episodes",
            "20",
            "--out",
            str(tmp_path),
            "--plain",
            str(world_value_run),
        ]
    )
    assert len(rows) == 2 and "direct_normalized" in rows[0] and "direct_normalized" not in rows[1]
    assert all(w == 0 for w in rows[0]["weights"][-2:])  # bound heads get no weight
    out = capsys.readouterr().out
    assert "composed_normalized: mean" in out and "direct_normalized: mean" in out
    assert "stationary_normalized: mean" in out and "plain_normalized: mean" in out
    # the plain column composes the same checkpoint here, so it equals the composed one
    assert all(row["plain_normalized"] == row["composed_normalized"] for row in rows)


def test_an_experiments_bad_input_is_one_line_with_status_2(tmp_path, capsys, monkeypatch):
    import pytest

    from experiments import common, safety
    from experiments.common import run

    # the process-wide CPU settings (denormals flushed to zero) would outlive this test
    monkeypatch.setattr(common, "configure_cpu", lambda: None)

    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as stop:
        run(lambda: safety.main(["--episodes", "2", "--checkpoint", str(missing)]))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(f"{missing} is neither a checkpoint nor a run directory\n")
    assert len(err.splitlines()) == 1
