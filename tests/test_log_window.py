"""The training loop's log window: returns per behaviour task, update diagnostics as tags by
their shape and name, and a fresh start after every log point."""

import pytest
import torch

from agents.log_window import LogWindow


def test_returns_by_task_and_diagnostics_by_shape_and_name():
    window = LogWindow(["blue", "square"], "cpu", step=0)
    done = torch.tensor([True, True, False, True])
    window.episodes(done, torch.tensor([1.0, 3.0, 50.0, 2.0]), torch.tensor([0, -1, 1, 0]))
    for value in (1.0, 3.0):
        window.update(
            {
                "td_loss": torch.tensor(value),
                "td_error": torch.tensor([value, 2 * value]),
                "entropy": torch.tensor(0.5),
            }
        )
    scalars, sps = window.close(step=100)
    assert sps > 0
    assert scalars["charts/episodic_return"] == pytest.approx(2.0)
    assert scalars["tasks/blue/episodic_return"] == pytest.approx(1.5)
    assert scalars["tasks/mixed/episodic_return"] == pytest.approx(3.0)
    assert "tasks/square/episodic_return" not in scalars  # its episode is still running
    assert float(scalars["losses/td_loss"]) == pytest.approx(2.0)
    assert float(scalars["heads/square/td_error"]) == pytest.approx(4.0)
    assert float(scalars["policy/entropy"]) == pytest.approx(0.5)


def test_a_closed_window_starts_afresh():
    window = LogWindow(["a"], "cpu", step=0)
    window.episodes(torch.tensor([True]), torch.tensor([1.0]), torch.tensor([0]))
    window.update({"td_loss": torch.tensor(1.0)})
    window.close(step=10)
    assert window.step == 10 and window.num_updates == 0
    scalars, _ = window.close(step=20)
    assert scalars == {}
