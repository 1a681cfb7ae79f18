"""Sweeps: seeds x config grids run as Ray Tune trials (a local Ray instance by default, a
cluster by address), each a normal training run, then summarised per config over seeds.

A trial is done once its run directory holds eval.json; resuming runs only the others, so a
finished trial's directory is never written again. Ray is an optional extra (`.[sweep]`).
"""

from __future__ import annotations

import csv
import fcntl
import importlib.util
import io
import itertools
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from composable_rl.config import ConfigError, load_config
from composable_rl.evaluation import mean_ci
from composable_rl.run.logging import read_scalars, save_figure, write_json, write_text

SPEC_FILE = "sweep.json"
CURVES_FILE = "curves.png"
TIMING_FILE = "trial.json"
CURVE_TAG = "charts/episodic_return"


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a config file, a grid point of it (`group`) and a seed."""

    name: str
    group: str
    config: str | None
    overrides: tuple[str, ...]
    seed: int

    @classmethod
    def from_record(cls, record: dict) -> Trial:
        """A trial from its plain-dict record in a spec file."""
        return cls(**{**record, "overrides": tuple(record["overrides"])})


RESERVED_KEYS = ("seed", "torch_threads")  # set by the sweep itself for each trial


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """'key=v1,v2' items as (key, values), commas inside brackets kept ('agent.hidden=[64,64],
    [128]'); a ValueError names a malformed item, a repeated key or value, or a key the sweep
    sets itself."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = split_values(text)
        if not sep or not key or not all(values):
            raise ValueError(f"--grid {item!r}: expected key=value1,value2,...")
        if key in RESERVED_KEYS:
            raise ValueError(f"--grid {item!r}: the sweep sets {key} itself (use --seeds)")
        if key in (k for k, _ in grid):
            raise ValueError(f"--grid {item!r}: {key} is already a grid axis")
        if len(set(values)) < len(values):
            raise ValueError(f"--grid {item!r}: a value appears twice")
        grid.append((key, values))
    return grid


def split_values(text: str) -> list[str]:
    """Comma-separated values, commas inside [] or {} not splitting."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    return [*values, current.strip()]


def make_trials(
    config: str | None,
    grid: Sequence[tuple[str, list[str]]],
    seeds: Sequence[int],
    overrides: Sequence[str] = (),
) -> list[Trial]:
    """The cross product of the grid's values and the seeds of one config, base overrides
    first."""
    points = itertools.product(*(values for _, values in grid)) if grid else [()]
    trials = []
    for point in points:
        settings = tuple(f"{key}={value}" for (key, _), value in zip(grid, point, strict=True))
        group = ",".join(settings) or "base"
        for seed in seeds:
            name = f"{group}/seed={seed}"
            trials.append(Trial(name, group, config, (*overrides, *settings), seed))
    return trials


def config_problem(trial: Trial) -> str | None:
    """The one-line config error of a trial's settings, or None if they load."""
    try:
        load_config(trial.config and Path(trial.config), [*trial.overrides, f"seed={trial.seed}"])
    except ConfigError as err:
        return str(err)
    return None


def trial_dir(sweep_dir: Path, trial: Trial) -> Path:
    """A trial's normal run directory inside the sweep directory."""
    return sweep_dir / "trials" / trial.name.replace("/", "__")


def is_done(sweep_dir: Path, trial: Trial) -> bool:
    """Whether a trial finished: its run directory holds its final evaluation."""
    return (trial_dir(sweep_dir, trial) / "eval.json").is_file()


@contextmanager
def locked(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on file `path` (created if missing); a RuntimeError with `busy`
    if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(busy) from None
        yield


def run_trial(param: dict) -> dict:
    """Train one trial inside a Ray worker: its torch threads are the CPUs it was given, or its
    share of the machine's cores when fewer trials than cores are live there (the last trial
    of a sweep takes the cores the others left). A run directory with checkpoints (a trial
    killed part-way) resumes from them; one without is cleared first, so its TensorBoard
    curves hold one run. A trial still trained by another process (a worker of a driver just
    killed) fails instead of training beside it. Records the wall-clock of the run that
    finished it and its Ray node in trial.json."""
    import ray

    spec = param["spec"]
    os.chdir(spec["cwd"])  # a worker does not start in the driver's working directory
    import envs  # noqa: F401  (registers the built-in worlds)
    from agents.run_dir import hold_run_dir
    from agents.training import train
    from composable_rl.run.checkpoint import checkpoints
    from composable_rl.run.runtime import CoreShare, configure_cpu, machine_cores

    configure_cpu()
    overrides = [*spec["overrides"], f"seed={spec['seed']}"]
    cfg = load_config(spec["config"], overrides)
    run_dir = Path(spec["run_dir"])
    with hold_run_dir(run_dir):
        resume = bool(checkpoints(run_dir))
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)
        start = time.time()
        share = CoreShare(cores=machine_cores(), minimum=spec["threads"])
        result = train(cfg, run_dir, resume=resume, progress=False, share=share)
        record = {
            "step": result["step"],
            "seconds": time.time() - start,
            "started": start,
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
        }
        write_json(record, run_dir / TIMING_FILE)
    return record


def check_address(address: str | None, timeout: float) -> None:
    """Refuse, within `timeout` seconds, a cluster address `host:port` (or `ray://host:port`)
    where nothing answers, before a sweep writes anything (`ray.init` would retry for minutes);
    None, `local` and `auto` are left to Ray."""
    if address in (None, "local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--address {address}: expected auto or host:port, e.g. 10.0.0.1:6379")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise ValueError(
            f"cannot reach the Ray cluster at --address {address}: {reason.lower()} (waited up "
            f"to {timeout:g} s; --connect-timeout changes it)"
        ) from None


def run_sweep(
    trials: Sequence[Trial],
    sweep_dir: Path,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    address: str | None = None,
) -> dict[str, str]:
    """Run every trial not done yet as a Ray Tune trial (a local Ray instance unless
    `address` names a cluster); returns {trial name: one-line error} for the failed ones. A
    trial whose settings the config rejects fails alone, before Ray starts."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError('sweeps need Ray: pip install -e ".[sweep]"')
    sweep_dir = sweep_dir.resolve()
    failed, todo = {}, []
    for trial in trials:
        if is_done(sweep_dir, trial):
            continue
        if problem := config_problem(trial):
            failed[trial.name] = problem
        else:
            todo.append(trial)
    if not todo:
        return failed
    specs = [
        {
            "name": trial.name,
            "cwd": os.getcwd(),
            "config": trial.config and str(Path(trial.config).resolve()),
            "overrides": list(trial.overrides),
            "seed": trial.seed,
            "threads": max(1, int(cpus_per_trial)),
            "run_dir": str(trial_dir(sweep_dir, trial)),
        }
        for trial in todo
    ]
    with locked(sweep_dir / ".driver.lock", f"{sweep_dir}: another driver is running it"):
        return failed | _fit(specs, sweep_dir, cpus_per_trial, gpus_per_trial, address)


def _fit(
    specs: list[dict],
    sweep_dir: Path,
    cpus_per_trial: float,
    gpus_per_trial: float,
    address: str | None,
) -> dict[str, str]:
    """The Ray part of `run_sweep`: start or join Ray, fit the trials, shut Ray down; the
    trials that failed, with their last error line."""
    import ray
    from ray import tune

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError) as err:
            where = f"join the Ray cluster at --address {address}" if address else "start Ray"
            raise ValueError(f"cannot {where}: {err}") from None
        check_resources(ray.cluster_resources(), cpus_per_trial, gpus_per_trial)
        resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        failed = {}
        with tqdm(total=len(specs), unit="trial", desc="sweep") as bar:
            tuner = tune.Tuner(
                tune.with_resources(run_trial, resources),
                param_space={"spec": tune.grid_search(specs)},
                run_config=tune.RunConfig(
                    storage_path=str(sweep_dir / "ray"),
                    name="tune",
                    verbose=0,
                    callbacks=[progress_callback(bar)],
                ),
            )
            for result in tuner.fit():
                if result.error is not None:
                    lines = str(result.error).strip().splitlines()
                    failed[result.config["spec"]["name"]] = lines[-1] if lines else "failed"
    finally:
        ray.shutdown()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():  # Ray leaves its own SIGTERM handler behind
                signal.signal(sig, handler)
    return failed


def check_resources(available: dict, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """A ValueError if one trial asks for more CPUs or GPUs than the whole cluster has (Ray
    Tune would wait for them forever)."""
    for option, want, key in (
        ("--cpus-per-trial", cpus_per_trial, "CPU"),
        ("--gpus-per-trial", gpus_per_trial, "GPU"),
    ):
        if want > available.get(key, 0):
            have = available.get(key, 0)
            raise ValueError(f"{option} {want:g}: the Ray cluster has {have:g} {key}(s) in all")


def progress_callback(bar: tqdm) -> object:
    """A Ray Tune callback that advances `bar` as each trial ends, finished or failed (Tune
    pickles its callbacks with the run's settings: the bar stays behind)."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self, bar: tqdm) -> None:
            self.bar: tqdm | None = bar

        def __getstate__(self) -> dict:
            return {"bar": None}

        def on_trial_complete(self, iteration: int, trials: list, trial: object, **info) -> None:
            if self.bar is not None:
                self.bar.update(1)

        on_trial_error = on_trial_complete

    return Progress(bar)


def save_spec(
    sweep_dir: Path, trials: Sequence[Trial], cpus_per_trial: float, gpus_per_trial: float
) -> None:
    """Record the sweep's trials and resources for `--resume`, beside the trials recorded there
    before; a ValueError if one of the same name had other settings (its finished run would
    be taken for the new one)."""
    known = {trial.name: trial for trial in load_spec(sweep_dir)[0]} if is_sweep(sweep_dir) else {}
    for trial in trials:
        if known.get(trial.name, trial) != trial:
            raise ValueError(
                f"{sweep_dir} already holds trial {trial.name} with other settings "
                f"({known[trial.name]}): give another directory"
            )
    merged = {**known, **{trial.name: trial for trial in trials}}
    spec = {
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
        "trials": [asdict(trial) for trial in merged.values()],
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json(spec, sweep_dir / SPEC_FILE)


def is_sweep(sweep_dir: Path) -> bool:
    """Whether a directory holds a sweep's spec file."""
    return (sweep_dir / SPEC_FILE).is_file()


def load_spec(sweep_dir: Path) -> tuple[list[Trial], float, float]:
    """The trials, CPUs and GPUs per trial a sweep was started with."""
    if not is_sweep(sweep_dir):
        raise FileNotFoundError(f"{sweep_dir} holds no {SPEC_FILE}: not a sweep directory")
    spec = json.loads((sweep_dir / SPEC_FILE).read_text())
    trials = [Trial.from_record(record) for record in spec["trials"]]
    return trials, spec["cpus_per_trial"], spec["gpus_per_trial"]


def over_seeds(rows: Iterable[dict], keys: Sequence[str]) -> list[dict]:
    """The rows grouped by the fields `keys` (one row per seed and group): every other float
    field of a group as mean, 95% Student-t half-width (None for n < 2) and n."""
    values: dict[tuple, list[float]] = {}
    for row in rows:
        group = tuple(row.get(key) for key in keys)
        for key, value in row.items():
            if key not in keys and isinstance(value, float) and key != "ci95":
                values.setdefault((*group, key), []).append(value)
    summary = []
    for (*group, metric), numbers in values.items():
        mean, half = mean_ci(numbers)
        fields = dict(zip(keys, group, strict=True))
        summary.append({**fields, "metric": metric, "mean": mean, "ci95": half, "n": len(numbers)})
    return summary


def summarize(sweep_dir: Path, trials: Sequence[Trial]) -> list[dict]:
    """Per group and evaluation row (task, and start where there is one), every number of the
    finished trials' eval.json over their seeds (`over_seeds`)."""
    rows = []
    for trial in trials:
        if is_done(sweep_dir, trial):
            for row in json.loads((trial_dir(sweep_dir, trial) / "eval.json").read_text()):
                task = row["task"] + (f"/{row['start']}" if "start" in row else "")
                rows.append({**row, "config": trial.group, "task": task})
    return over_seeds(rows, ("config", "task"))


def learning_curves(sweep_dir: Path, trials: Sequence[Trial], tag: str) -> dict[str, tuple]:
    """Per group, (steps, mean, ci95 half-widths) of TensorBoard scalar `tag` over the seeds
    that logged it, at the steps every one of them logged (n < 2 gives no band)."""
    series: dict[str, list[dict[int, float]]] = {}
    for trial in trials:
        if is_done(sweep_dir, trial) and (points := read_scalars(trial_dir(sweep_dir, trial), tag)):
            series.setdefault(trial.group, []).append(points)
    curves = {}
    for group, runs in series.items():
        steps = sorted(set.intersection(*(set(run) for run in runs)))
        stats = [mean_ci([run[step] for run in runs]) for step in steps]
        curves[group] = (steps, [m for m, _ in stats], [h or 0.0 for _, h in stats])
    return curves


def plot_curves(
    curves: dict[str, tuple], panels: dict[str, list[str]], tag: str, path: Path
) -> None:
    """One panel per config (`panels`: title -> its groups), one line per group with its 95%
    confidence band, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {title: [g for g in groups if g in curves] for title, groups in panels.items()}
    shown = {title: groups for title, groups in shown.items() if groups}
    columns = min(3, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, groups) in zip(axes.flat, shown.items(), strict=False):
        for group in groups:
            steps, mean, half = curves[group]
            low = [m - h for m, h in zip(mean, half, strict=True)]
            high = [m + h for m, h in zip(mean, half, strict=True)]
            ax.plot(steps, mean, label=group)
            ax.fill_between(steps, low, high, alpha=0.25)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"{tag}\n(mean, 95% CI over seeds)", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.tight_layout()
    save_figure(fig, path, 110)
    plt.close(fig)


def trial_table(sweep_dir: Path, trials: Sequence[Trial], failed: dict[str, str]) -> list[dict]:
    """One row per trial: done (with its wall-clock and Ray node), failed (with its one-line
    error) or not run."""
    rows = []
    for trial in trials:
        run_dir = trial_dir(sweep_dir, trial)
        if trial.name in failed:
            status = f"failed: {failed[trial.name]}"
        else:
            status = "done" if is_done(sweep_dir, trial) else "not run"
        row = {"trial": trial.name, "status": status}
        if status == "done" and (run_dir / TIMING_FILE).is_file():
            record = json.loads((run_dir / TIMING_FILE).read_text())
            row["seconds"] = record["seconds"]
            if "node" in record:
                row["node"] = record["node"][:12]
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path, trials: Sequence[Trial]) -> list[dict]:
    """Summarise the finished trials into summary.json and summary.csv, plot their learning
    curves into curves.png, and return the summary rows."""
    rows = summarize(sweep_dir, trials)
    write_json(rows, sweep_dir / "summary.json")
    text = io.StringIO()
    writer = csv.DictWriter(text, ["config", "task", "metric", "mean", "ci95", "n"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(text.getvalue(), sweep_dir / "summary.csv")
    curves = learning_curves(sweep_dir, trials, CURVE_TAG)
    if curves:
        panels: dict[str, list[str]] = {}
        for trial in trials:
            groups = panels.setdefault(Path(trial.config or "defaults").stem, [])
            groups += [] if trial.group in groups else [trial.group]
        plot_curves(curves, panels, CURVE_TAG, sweep_dir / CURVES_FILE)
    return rows
