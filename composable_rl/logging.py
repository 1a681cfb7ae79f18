"""TensorBoard logging with the project's tag scheme; `global_step` is always environment steps."""

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from composable_rl.config import to_dict

EPISODIC_RETURN = "charts/episodic_return"
SPS = "charts/SPS"
TD_LOSS = "losses/td_loss"
POLICY_ENTROPY = "policy/entropy"
HPARAMS = "hyperparameters"

Scalar = float | torch.Tensor


def head_tags(
    head_names: Sequence[str],
    td_errors: torch.Tensor | Sequence[float],
    q_means: torch.Tensor | Sequence[float],
) -> dict[str, Scalar]:
    """Map per-head values [K] to `heads/<name>/td_error` and `heads/<name>/q_mean` (no sync)."""
    if len(td_errors) != len(head_names) or len(q_means) != len(head_names):
        raise ValueError(
            f"{len(head_names)} head names but {len(td_errors)} td_errors "
            f"and {len(q_means)} q_means"
        )
    tags: dict[str, Scalar] = {}
    for i, name in enumerate(head_names):
        tags[f"heads/{name}/td_error"] = td_errors[i]
        tags[f"heads/{name}/q_mean"] = q_means[i]
    return tags


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys, e.g. `{"agent": {"lr": 1}}` -> `{"agent.lr": 1}`."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def hparams_markdown(config: Any) -> str:
    """Markdown table of a config (dataclass or nested dict), one row per dotted key."""
    data = to_dict(config) if dataclasses.is_dataclass(config) else config
    rows = ["| key | value |", "| --- | --- |"]
    for key, value in flatten(data).items():
        text = value if isinstance(value, str) else json.dumps(value)
        rows.append(f"| {key} | {_escape(text)} |")
    return "\n".join(rows)


def _escape(text: str) -> str:
    """Escape pipes so a value cannot break the markdown table."""
    return text.replace("|", r"\|")


class Logger:
    """Thin wrapper around a TensorBoard SummaryWriter writing into `log_dir`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def scalar(self, tag: str, value: Scalar, step: int) -> None:
        """Log one scalar; a tensor value costs one host sync."""
        self._writer.add_scalar(tag, float(value), global_step=step)

    def scalars(self, values: Mapping[str, Scalar], step: int) -> None:
        """Log several scalars, copying all 0-d tensor values to the host in one sync."""
        tensor_tags = [tag for tag, value in values.items() if isinstance(value, torch.Tensor)]
        host: dict[str, float] = {}
        if tensor_tags:
            device = values[tensor_tags[0]].device
            stacked = torch.stack(
                [values[tag].detach().reshape(()).to(device, torch.float32) for tag in tensor_tags]
            )
            host = dict(zip(tensor_tags, stacked.tolist(), strict=True))
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(host.get(tag, value)), global_step=step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Log a markdown text entry."""
        self._writer.add_text(tag, text, global_step=step)

    def hparams_table(self, config: Any) -> None:
        """Write the flattened config as a markdown table under the `hyperparameters` tag."""
        self.text(HPARAMS, hparams_markdown(config))

    def flush(self) -> None:
        """Push pending events to disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> "Logger":
        """Use as a context manager that closes the writer on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the writer."""
        self.close()
