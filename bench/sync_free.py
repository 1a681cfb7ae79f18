"""Training steps without host synchronisation: a short run with every host read armed to fail
between two of its log points.

    python -m bench.sync_free [--device cuda] [--config configs/quickstart.yaml] [--steps N]
                              [--set KEY=VALUE ...]

From the end of the first log point (its scalars written) to the start of the second (its
window closed), the run acts, steps its world, adds to and samples its replay, draws tasks and
updates. On the CPU every tensor method that reads a value on the host (`item`, `tolist`,
`cpu`, `numpy`, `bool`, `int`, `float`, index) is patched to raise when the project's own code
calls it; on a CUDA device torch's sync debug mode turns any synchronisation into an error.
Prints the verdict; exits with status 1 on a read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from agents import training
from agents.factory import check_device
from agents.log_window import LogWindow
from composable_rl.config import Config, ConfigError, load_config
from composable_rl.run.cli import fail
from composable_rl.run.logging import Logger

ROOT = Path(__file__).resolve().parent.parent
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
QUIET = ("eval_episodes=0", "checkpoint.minutes=0", "checkpoint.every=0")  # no other reads


class HostRead(AssertionError):
    """A tensor read on the host by the project's code while the guard was armed."""


class HostReads:
    """Inside `with`: the tensor methods that read a value on the host raise while `armed`
    when called from a project file (tests and the `allowed` files excepted; torch's own
    internals are not checked)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.armed = False
        self.skip = tuple(str(ROOT / path) for path in ("tests", *allowed))
        self.originals = {name: getattr(torch.Tensor, name) for name in READS}

    def __enter__(self) -> HostReads:
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, self.guard(name, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, original)

    def arm(self, armed: bool) -> None:
        """Raise on reads from now on (True) or let them pass (False)."""
        self.armed = armed

    def guard(self, name: str, original: Callable) -> Callable:
        def read(tensor: torch.Tensor, *args: object, **kwargs: object) -> object:
            frame = sys._getframe(1)
            caller = frame.f_code.co_filename
            ours = caller.startswith(str(ROOT)) and not caller.startswith(self.skip)
            if self.armed and ours:
                raise HostRead(f"host read {name}() at {caller}:{frame.f_lineno}")
            return original(tensor, *args, **kwargs)

        return read


@contextmanager
def second_window(arm: Callable[[bool], None]) -> Iterator[Callable[[], int]]:
    """While inside, training runs call arm(True) once their first log point has written its
    scalars and arm(False) as the second begins; yields how many windows have closed."""
    closed = 0

    class Window(LogWindow):
        def close(self, step: int):
            nonlocal closed
            arm(False)
            closed += 1
            return super().close(step)

    class Written(Logger):
        def scalars(self, values, step: int) -> None:
            super().scalars(values, step)
            arm(closed == 1)

    saved = training.LogWindow, training.Logger
    training.LogWindow, training.Logger = Window, Written
    try:
        yield lambda: closed
    finally:
        training.LogWindow, training.Logger = saved


def cuda_sync_debug(armed: bool) -> None:
    """arm() on a CUDA device: torch's sync debug mode, 'error' while armed."""
    torch.cuda.set_sync_debug_mode("error" if armed else "default")


def guarded_run(cfg: Config, path: Path, allowed: tuple[str, ...] = ()) -> dict:
    """Train `cfg` in `path` with host reads armed over its second log window (see the module
    docstring); returns train()'s result and the windows closed, or raises on a read."""
    device = torch.device(cfg.device)
    with HostReads(allowed) as reads:
        arm = cuda_sync_debug if device.type == "cuda" else reads.arm
        with second_window(arm) as closed:
            try:
                result = training.train(cfg, path, progress=False)
            finally:
                arm(False)
            return {**result, "windows": closed()}


def main(argv: list[str] | None = None) -> int:
    """Run the check on a config and print its verdict; 0 when no step read the host."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml", help="config file")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--steps", type=int, default=40_960, help="env steps of the run")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    args = parser.parse_args(argv)
    log_every = max(args.steps // 4, 1)
    overrides = [f"device={args.device}", f"total_steps={args.steps}", f"log_every={log_every}"]
    try:
        check_device(args.device)
        cfg = load_config(args.config, [*overrides, *args.set, *QUIET])
    except (ConfigError, FileNotFoundError) as err:
        fail(str(err))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            found = guarded_run(cfg, Path(tmp) / "run")
        except (HostRead, RuntimeError) as err:
            if isinstance(err, RuntimeError) and "synchroniz" not in str(err):
                raise  # not the sync debug mode's verdict
            print(f"{args.config} on {args.device}: a step read the host: {err}")
            return 1
    print(
        f"{args.config} on {args.device}: no host read in {log_every:,} env steps between "
        f"log points ({found['updates']:,} updates in the run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
