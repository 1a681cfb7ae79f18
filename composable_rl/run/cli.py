"""What the command-line tools share: one-line errors with exit status 2, option types, and
output paths checked before any long work."""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import NoReturn


def fail(message: str, status: int = 2) -> NoReturn:
    """Exit with one line on stderr, prefixed by the program's name; status 2 = usage error."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    sys.exit(status)


class OutputWriteError(OSError):
    """An output (a file or a checkpoint) that could not be written, e.g. on a full disk; the
    message names the path, why and the bytes it needed, and nothing of it is left."""


class InUseError(RuntimeError):
    """Something another process holds, e.g. a run directory; the message names the holder."""


def full_disk(err: BaseException) -> str | None:
    """The OS's reason when an error is a full disk, a quota or a file too large, else None."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return os.strerror(err.errno).lower()
    return None


def run_command(main: Callable[[], object]) -> None:
    """A command's entry point: Ctrl-C exits with status 130 and an output that cannot be
    written with status 1, each as one line instead of a traceback (outputs are written whole or
    not at all, so nothing is left half-written)."""
    try:
        main()
    except KeyboardInterrupt:
        fail(
            "interrupted; files written before it are whole, none is half-written",
            128 + signal.SIGINT,
        )
    except (OutputWriteError, InUseError) as err:
        fail(str(err), 1)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (pointing at --help), like every other error;
    the options in `dash_values` take a value that starts with '-' (`--task -blue`)."""

    def __init__(self, *args, dash_values: Collection[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dash_values = tuple(dash_values)

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 and the message instead of the usage block."""
        fail(f"{message} (see --help)")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """argparse's parse_args after attaching dash values (see `attach_dash_values`)."""
        argv = sys.argv[1:] if args is None else list(args)
        known = {name for action in self._actions for name in action.option_strings}
        return super().parse_args(attach_dash_values(argv, self.dash_values, known), namespace)


def attach_dash_values(
    argv: Sequence[str], options: Collection[str], known: Collection[str]
) -> list[str]:
    """`--task -blue` as `--task=-blue`: argparse takes a value that starts with '-' for an
    option, so a value of one of `options` is attached to it unless it starts with '--' or is
    one of the `known` option strings (e.g. -h)."""
    joined: list[str] = []
    for arg in argv:
        attach = joined and joined[-1] in options and arg.startswith("-")
        if attach and not arg.startswith("--") and arg not in known:
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def positive_int(text: str) -> int:
    """An integer option value of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number option value above 0."""
    return _float_option(text, lambda value: value > 0, "a number above 0")


def non_negative_float(text: str) -> float:
    """A number option value of at least 0."""
    return _float_option(text, lambda value: value >= 0, "a number of at least 0")


def unit_fraction(text: str) -> float:
    """A number option value in [0, 1]."""
    return _float_option(text, lambda value: 0 <= value <= 1, "a number in [0, 1]")


def _float_option(text: str, valid: Callable[[float], bool], expected: str) -> float:
    """`text` as a finite float that `valid` accepts, else an argparse error naming it."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and valid(value)):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
    return value


def file_problem(path: Path) -> str | None:
    """Why file `path` could not be written (its folder missing or read-only, or it is a
    folder), or None."""
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if path.is_dir():
        return "is a folder, not a file"
    if not os.access(folder, os.W_OK):
        return f"folder {folder} is not writable"
    return None


def folder_problem(path: Path) -> str | None:
    """Why folder `path` could not be created or written (its nearest existing ancestor is a
    file or read-only), or None."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"folder {existing} is not writable"
    return None
