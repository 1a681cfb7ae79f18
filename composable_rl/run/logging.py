"""TensorBoard logging with the project's tag scheme; `global_step` is always environment steps."""

import dataclasses
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from composable_rl.config import to_dict
from composable_rl.run.cli import OutputWriteError, full_disk

EPISODIC_RETURN = "charts/episodic_return"
SPS = "charts/SPS"
TD_LOSS = "losses/td_loss"
POLICY_ENTROPY = "policy/entropy"
HPARAMS = "hyperparameters"

Scalar = float | torch.Tensor


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
        if not values:
            return
        tensor_tags = [tag for tag, value in values.items() if isinstance(value, torch.Tensor)]
        host: dict[str, float] = {}
        if tensor_tags:
            device = values[tensor_tags[0]].device
            stacked = torch.stack(
                [values[tag].detach().reshape(()).to(device, torch.float32) for tag in tensor_tags]
            )
            host = dict(zip(tensor_tags, stacked.tolist(), strict=True))
        # one event holds them all: a log point of 50 tags cost 1.8 ms as 50 add_scalar calls
        summary = Summary(
            value=[
                Summary.Value(tag=tag, simple_value=float(host.get(tag, value)))
                for tag, value in values.items()
            ]
        )
        self._writer._get_file_writer().add_summary(summary, step)

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


UNDEFINED = "n/a"  # how tables show an undefined number (None), e.g. a normalised return


def format_table(rows: list[dict]) -> str:
    """Fixed-width text table of result rows (columns: every key, in order of first appearance;
    blank where a row lacks one, e.g. the multi-objective row beside per-head rows)."""
    cols = list(dict.fromkeys(key for row in rows for key in row))
    text = [[_cell(row[c]) if c in row else "" for c in cols] for row in rows]
    widths = [max(len(c), 8, *(len(line[i]) for line in text)) for i, c in enumerate(cols)]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True))
        for line in [cols, *text]
    )


def _cell(value: object) -> str:
    """A table cell: floats to 3 decimals, None as undefined."""
    if value is None:
        return UNDEFINED
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _scored(rows: list[dict]) -> list[dict]:
    """The rows whose normalised return is defined (not None: the oracle beats random)."""
    return [row for row in rows if row["normalized_return"] is not None]


def plot_scores(rows: list[dict], path: Path) -> None:
    """Horizontal bar chart of the normalised return of every task, worst at the bottom; tasks
    whose normalised return is undefined are left out, and the chart says how many."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = sorted(_scored(rows), key=lambda r: r["normalized_return"])
    scores = [r["normalized_return"] for r in scored]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(scored) + 1.2))
    ax.barh([r["task"] for r in scored], scores, color="#4a7bb7")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("normalised return (1 = oracle, 0 = uniform random)")
    ax.set_xlim(min([0.0, *scores]) - 0.02, 1.08)
    ax.tick_params(axis="y", labelsize=7)
    if len(scored) < len(rows):
        undefined = len(rows) - len(scored)
        ax.set_title(f"not shown: {undefined} undefined (oracle = random)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def plot_quantiles(
    rows: list[dict], path: Path, keys: tuple[str, str] = ("normalized_return", "success")
) -> None:
    """Two scores of each task (default normalised return and success) against the quantile q
    of its rows (one line per task; q = 0 is the greedy policy, 1 the base policy); undefined
    points are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    tasks = dict.fromkeys(row["task"] for row in rows)
    for key, ax in zip(keys, axes, strict=True):
        for task in tasks:
            points = sorted(
                (r["quantile"], r[key]) for r in rows if r["task"] == task and r[key] is not None
            )
            ax.plot(*zip(*points, strict=True), marker="o", label=task)
        ax.set_xlabel("quantile q (0 = greedy, 1 = base policy)")
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].axhline(1.0, color="black", linewidth=0.8)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)


def score_summary(rows: list[dict]) -> str:
    """Mean normalised return and success over the tasks, and the worst task; tasks whose
    normalised return is undefined count for success only, and the summary says how many."""
    mean_success = sum(r["success"] for r in rows) / len(rows)
    scored = _scored(rows)
    undefined = len(rows) - len(scored)
    if not scored:
        return (
            f"{len(rows)} tasks: normalised return undefined (oracle = random), mean success "
            f"{mean_success:.3f}"
        )
    worst = min(scored, key=lambda r: r["normalized_return"])
    mean_norm = sum(r["normalized_return"] for r in scored) / len(scored)
    over = f" over {len(scored)} ({undefined} undefined: oracle = random)" if undefined else ""
    return (
        f"{len(rows)} tasks: mean normalised return {mean_norm:.3f}{over}, mean success "
        f"{mean_success:.3f}; worst {worst['task']!r} at {worst['normalized_return']:.3f}"
    )


def read_scalars(log_dir: Path, tag: str) -> dict[int, float]:
    """A TensorBoard scalar of a run directory by step ({} if it never logged `tag`)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    if tag not in events.Tags().get("scalars", []):
        return {}
    return {event.step: event.value for event in events.Scalars(tag)}


def write_json(value: object, path: Path) -> None:
    """Writes strict JSON (NaN and infinities raise ValueError) with `write_text`."""
    write_text(json.dumps(value, indent=2, allow_nan=False), path)


def write_text(text: str, path: Path) -> None:
    """Writes `text` as UTF-8 with `write_bytes`."""
    write_bytes(text.encode("utf-8"), Path(path))


def write_bytes(data: bytes, path: Path) -> None:
    """Writes `data` through a temporary file in the same folder, renamed over `path` once
    complete, so a failure leaves no partial file; a full disk or quota is an OutputWriteError
    naming the path, why and the bytes needed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as err:
        if (reason := full_disk(err)) is None:
            raise
        raise OutputWriteError(f"cannot write {path}: {reason} ({len(data):,} bytes)") from err
    finally:
        temporary.unlink(missing_ok=True)


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """A matplotlib figure saved whole or not at all (`write_bytes`), in the format of the
    path's suffix."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    write_bytes(buffer.getvalue(), Path(path))
