"""The share of the cores a process's long loops follow: the run infrastructure's `CoreShare`
registers itself here while it is entered, and every rollout calls `follow_share` before each
step, so that a long evaluation gives way to work started beside it (and takes the cores back
when that work ends). Outside any share, `follow_share` does nothing."""

from __future__ import annotations

from typing import Protocol


class Share(Protocol):
    """What a rollout follows: `follow()` sets this process's threads to its share."""

    def follow(self) -> None: ...


_ENTERED: list[Share] = []  # the shares this process is inside, innermost last


def enter_share(share: Share) -> None:
    """Make `share` the one rollouts follow, until `leave_share(share)`."""
    _ENTERED.append(share)


def leave_share(share: Share) -> None:
    """Stop following `share` (the one entered before it, if any, is followed again)."""
    if share in _ENTERED:
        _ENTERED.remove(share)


def follow_share() -> None:
    """Follow the innermost entered share, if any: cheap enough for every step of a loop."""
    if _ENTERED:
        _ENTERED[-1].follow()
