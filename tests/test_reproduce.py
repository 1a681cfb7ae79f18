"""experiments.reproduce: per-seed summaries of the evaluations, and a quick reproduction of
the quickstart section on local Ray whose tables match the trials' own evaluations."""

import json
import statistics

import pytest

from experiments.reproduce import (
    SECTIONS,
    boolean_summary,
    continuous_summary,
    linear_summary,
    section_trials,
)


def test_boolean_summary_skips_undefined_scores():
    rows = [
        {"task": "a", "normalized_return": 0.5, "success": 1.0},
        {"task": "b", "normalized_return": None, "success": 0.0},
        {"task": "c", "normalized_return": 1.0, "success": 1.0},
    ]
    assert boolean_summary(rows) == {"normalized_return": 0.75, "success": 2 / 3, "worst": 0.5}


def test_linear_summary_splits_by_the_sign_of_the_weights():
    rows = [
        {"weights": [1.0, 0.5], "stationary_normalized": 1.0, "composed_normalized": 0.8},
        {"weights": [-1.0, 0.2], "stationary_normalized": 0.6, "composed_normalized": 0.4},
        {"weights": [-0.5, -0.2], "stationary_normalized": 0.9, "composed_normalized": None},
    ]
    summary = {row["vectors"]: row for row in linear_summary(rows)}
    assert summary["all"]["composed mean"] == pytest.approx(0.6)
    assert summary["all"]["composed worst"] == 0.4
    assert summary["sum(w) > 0"]["stationary mean"] == 1.0
    assert summary["sum(w) < 0"]["stationary worst"] == 0.6
    assert "plain mean" not in summary["all"]


def test_continuous_summary_gives_mean_and_worst_of_each_column():
    rows = [
        {"exact_heads_normalized": 0.99, "composed_normalized": 0.9, "ratio": 0.9 / 0.99},
        {"exact_heads_normalized": 0.97, "composed_normalized": 0.95, "ratio": 0.95 / 0.97},
    ]
    summary = continuous_summary(rows)
    assert summary["composed_normalized mean"] == pytest.approx(0.925)
    assert summary["composed_normalized worst"] == 0.9
    assert summary["ratio worst"] == pytest.approx(0.9 / 0.99)


def test_sections_run_five_seeds_under_ten_minutes_and_three_above():
    seeds = {trial.group: trial.seed + 1 for trial in section_trials(SECTIONS, quick=False)}
    assert seeds["boolean_rooms"] == 3 and seeds["quickstart"] == seeds["office"] == 5
    assert {t.seed for t in section_trials(SECTIONS, quick=True)} == {0, 1}


def test_quick_reproduction_matches_the_trials_evaluations(tmp_path):
    pytest.importorskip("ray", reason="reproduce needs the optional extra .[sweep]")
    from experiments import reproduce

    only = ["--only", "quickstart", "linear_quadratic"]
    text = reproduce.main(["--quick", *only, "--out", str(tmp_path)])
    assert (tmp_path / "results.md").read_text() == text
    seeds = [tmp_path / "trials" / f"quickstart__seed={seed}" for seed in (0, 1)]
    booleans = [json.loads((d / "boolean.json").read_text())["rows"] for d in seeds]
    assert all(len(rows) == 63 for rows in booleans)
    means = [boolean_summary(rows)["normalized_return"] for rows in booleans]
    sections = {part.split("\n")[0]: part for part in text.split("### ")[1:]}
    boolean = sections["Boolean composition, zero-shot (63 tasks)"]
    line = next(line for line in boolean.splitlines() if line.startswith("| `quickstart` |"))
    assert line.startswith(f"| `quickstart` | {statistics.mean(means):.3f} ± ")
    assert line.endswith("| 2 |")
    evals = [json.loads((d / "eval.json").read_text()) for d in seeds]
    blue = [next(r["normalized_return"] for r in rows if r["task"] == "blue") for rows in evals]
    heads = sections["Single-head tasks"]
    line = next(line for line in heads.splitlines() if line.startswith("| `quickstart` | blue |"))
    assert line.startswith(f"| `quickstart` | blue | {statistics.mean(blue):.3f} ± ")
    composed = sections["Continuous actions against the exact optimum (linear_quadratic)"]
    line = next(line for line in composed.splitlines() if line.startswith("| ratio |"))
    assert line.endswith("| 2 |")
