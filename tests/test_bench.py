"""Smoke test of the throughput benchmark: every category measured, rows in the JSON schema."""

import json

from bench.throughput import main

CATEGORIES = {"env-only", "acting", "update", "end-to-end", "sb3-dqn"}


def test_quick_benchmark_rows(tmp_path):
    """--quick returns and writes rows of exactly four keys, every category, positive values."""
    path = tmp_path / "b.json"
    rows = main(["--quick", "--json", str(path)])
    assert json.loads(path.read_text()) == rows
    assert all(set(r) == {"what", "setting", "value", "unit"} for r in rows)
    assert {r["what"] for r in rows} == CATEGORIES
    end_to_end = [r["setting"] for r in rows if r["what"] == "end-to-end"]
    assert [s.split(", ")[1] for s in end_to_end] == [
        "quickstart N=1024",
        "quickstart N=1024",
        "quickstart with N=64",
        "quickstart with N=64",
    ]
    numeric = [r["value"] for r in rows if not isinstance(r["value"], str)]
    assert numeric and all(v > 0 for v in numeric)
