"""TensorBoard logger: event files, scalar values and the documented tag names; result tables,
score summaries and plots with undefined scores; strict, atomic JSON."""

import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composable_rl.config import Config
from composable_rl.evaluation import mean_ci
from composable_rl.run.logging import (
    EPISODIC_RETURN,
    HPARAMS,
    POLICY_ENTROPY,
    SPS,
    TD_LOSS,
    Logger,
    flatten,
    format_table,
    hparams_markdown,
    plot_scores,
    score_summary,
    write_json,
)


def read_events(log_dir) -> EventAccumulator:
    """Load every event written to `log_dir`."""
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return events


def test_fixed_tags_follow_design():
    assert EPISODIC_RETURN == "charts/episodic_return"
    assert SPS == "charts/SPS"
    assert TD_LOSS == "losses/td_loss"
    assert POLICY_ENTROPY == "policy/entropy"
    assert HPARAMS == "hyperparameters"


def test_logger_writes_scalars_text_and_hparams(tmp_path):
    values = {
        SPS: 1234.0,
        TD_LOSS: torch.tensor(0.25),
        "heads/blue/td_error": torch.tensor(0.5),
        "heads/blue/q_mean": torch.tensor(-1.0),
    }
    with Logger(tmp_path) as logger:
        logger.scalar(EPISODIC_RETURN, torch.tensor(3.0), step=64)
        logger.scalars(values, step=128)
        logger.text("notes", "hello", step=5)
        logger.hparams_table(Config())
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = read_events(tmp_path)
    expected = {EPISODIC_RETURN: 3.0, SPS: 1234.0, TD_LOSS: 0.25}
    expected |= {"heads/blue/td_error": 0.5, "heads/blue/q_mean": -1.0}
    assert set(events.Tags()["scalars"]) == set(expected)
    for tag, value in expected.items():
        (event,) = events.Scalars(tag)
        assert event.value == pytest.approx(value)
        assert event.step == (64 if tag == EPISODIC_RETURN else 128)
    assert {"notes/text_summary", f"{HPARAMS}/text_summary"} <= set(events.Tags()["tensors"])


def test_hparams_markdown_flattens_config():
    table = hparams_markdown(Config()).splitlines()
    assert table[:2] == ["| key | value |", "| --- | --- |"]
    assert "| agent.hidden | [256, 256] |" in table
    assert "| env.layout | four_rooms |" in table
    assert "| env.object_positions | null |" in table
    assert hparams_markdown({"a": "x|y"}).splitlines()[-1] == r"| a | x\|y |"


def test_flatten():
    assert flatten({"a": 1, "b": {"c": {"d": 2}}}) == {"a": 1, "b.c.d": 2}


ROWS = [
    {"task": "blue", "normalized_return": 0.9, "success": 1.0},
    {"task": "0*blue", "normalized_return": None, "success": 0.0},
    {"task": "square", "normalized_return": 0.5, "success": 0.5},
]


def test_undefined_scores_are_shown_and_left_out_of_means(tmp_path):
    assert format_table(ROWS).splitlines()[2].split() == ["0*blue", "n/a", "0.000"]
    assert score_summary(ROWS) == (
        "3 tasks: mean normalised return 0.700 over 2 (1 undefined: oracle = random), "
        "mean success 0.500; worst 'square' at 0.500"
    )
    assert score_summary(ROWS[1:2]) == (
        "1 tasks: normalised return undefined (oracle = random), mean success 0.000"
    )
    for rows, name in ((ROWS, "some.png"), (ROWS[1:2], "none.png")):
        plot_scores(rows, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000


def test_mean_ci_is_undefined_for_one_value():
    assert mean_ci([2.0]) == (2.0, None)
    assert mean_ci([1.0, 3.0])[1] > 0


def test_write_json_is_strict_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "rows.json"
    write_json(ROWS, path)
    assert json.loads(path.read_text()) == ROWS
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json([{"x": math.nan}], path)
    assert json.loads(path.read_text()) == ROWS and sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(FileNotFoundError):
        write_json(ROWS, tmp_path / "missing" / "rows.json")
    assert sorted(tmp_path.iterdir()) == [path]
