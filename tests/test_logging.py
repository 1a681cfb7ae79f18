"""TensorBoard logger: event files, scalar values and the DESIGN.md tag names."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composable_rl.config import Config
from composable_rl.logging import (
    EPISODIC_RETURN,
    HPARAMS,
    POLICY_ENTROPY,
    SPS,
    TD_LOSS,
    Logger,
    flatten,
    head_tags,
    hparams_markdown,
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


def test_head_tags_names_and_values():
    tags = head_tags(["blue", "square"], torch.tensor([0.5, 1.5]), torch.tensor([2.0, 3.0]))
    assert list(tags) == [
        "heads/blue/td_error",
        "heads/blue/q_mean",
        "heads/square/td_error",
        "heads/square/q_mean",
    ]
    assert float(tags["heads/square/td_error"]) == 1.5
    assert float(tags["heads/blue/q_mean"]) == 2.0


def test_head_tags_length_mismatch():
    with pytest.raises(ValueError, match="2 head names"):
        head_tags(["a", "b"], torch.zeros(3), torch.zeros(2))


def test_logger_writes_scalars_text_and_hparams(tmp_path):
    values = {
        SPS: 1234.0,
        TD_LOSS: torch.tensor(0.25),
        **head_tags(["blue"], torch.tensor([0.5]), torch.tensor([-1.0])),
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
