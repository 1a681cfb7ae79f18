"""Worlds by name: each world module registers its config section, its constructor and its
optional evaluation hooks, so that training and evaluation build any world from a config.

Names are found in three places, in this order: worlds registered so far; a name of the form
"package.module:name", whose module is imported (it registers on import); and the entry points
of the group "composable_rl.worlds" of installed packages (each names a module to import),
which is how the built-in worlds and third-party packages are found without an import here.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from composable_rl.world import Act, World

ENTRY_POINT_GROUP = "composable_rl.worlds"

Evaluate = Callable[[Any, Act, int, str], list[dict]]


class WorldLookupError(LookupError):
    """A world name that no registration, module or entry point provides."""


@dataclass(frozen=True)
class WorldEntry:
    """One registered world.

    config: its config section, a dataclass deriving from `composable_rl.config.WorldConfig`.
    make(section, num_envs, device): a new world of that section with num_envs slots.
    evaluate(section, act, episodes, device): result rows of a trained policy
        act(obs, weights [N, K]) -> actions, e.g. scored by the world's exact oracle; None uses
        the generic greedy per-head returns with confidence intervals.
    evaluate_temporal(section, task, make_policy, episodes, seed, device): result rows of a
        temporal task (LTL formula or reward-machine file); make_policy(machine) returns a
        policy(obs, machine states) -> actions. None: the world runs no temporal tasks.
    score_goals(section, act, goal_rewards, episodes, seed, device): one result row of the task
        paying goal_rewards [G] at the goals (a Boolean task), for a goal world without a
        tabular model. None: such tasks are scored only on tabular worlds.
    """

    name: str
    config: type
    make: Callable[[Any, int, str], World]
    evaluate: Evaluate | None = None
    evaluate_temporal: Callable[..., list[dict]] | None = None
    score_goals: Callable[..., dict] | None = None


_WORLDS: dict[str, WorldEntry] = {}
_DEFAULTS: list[str] = []  # worlds registered as the default of a section that names none
# rewrites of env sections saved in a format a world module retired: (raw section, the section
# class its name picks) -> the section in today's format
SectionUpgrade = Callable[[Mapping[str, Any], type], Mapping[str, Any]]
_SECTION_UPGRADES: list[SectionUpgrade] = []


def register_world(
    name: str,
    config: type,
    make: Callable[[Any, int, str], World],
    evaluate: Evaluate | None = None,
    evaluate_temporal: Callable[..., list[dict]] | None = None,
    score_goals: Callable[..., dict] | None = None,
    default: bool = False,
) -> WorldEntry:
    """Register (or re-register, e.g. on a module reload) the world `name`; `default` makes it
    the world of an env section that names none."""
    entry = WorldEntry(name, config, make, evaluate, evaluate_temporal, score_goals)
    _WORLDS[name] = entry
    if default and name not in _DEFAULTS:
        _DEFAULTS.append(name)
    return entry


def default_world() -> str:
    """The world of an env section that names none: the one an installed world module
    registers with `default=True` (every entry point is loaded to find it)."""
    if not _DEFAULTS:
        _load_entry_points(None)
    if len(_DEFAULTS) != 1:
        found = ", ".join(_DEFAULTS) or "none"
        raise WorldLookupError(
            f"name a world: one registered world must be the default, found {found}; "
            f"registered worlds: {', '.join(registered_worlds())}"
        )
    return _DEFAULTS[0]


def register_section_upgrade(upgrade: SectionUpgrade) -> None:
    """Add a rewrite of env sections saved in an earlier format; the world module that retired
    the format registers it, so the library keeps no world's history."""
    if upgrade not in _SECTION_UPGRADES:
        _SECTION_UPGRADES.append(upgrade)


def upgrade_section(data: Mapping[str, Any], section: type) -> Mapping[str, Any]:
    """An env section with every registered rewrite applied, in the order registered."""
    for upgrade in _SECTION_UPGRADES:
        data = upgrade(data, section)
    return data


def world_entry(name: str) -> WorldEntry:
    """The entry of `name`, importing its module or entry point when it is not registered yet."""
    if name in _WORLDS:
        return _WORLDS[name]
    module, sep, short = name.partition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise WorldLookupError(f"world {name!r}: cannot import {module!r}: {err}") from err
        if short in _WORLDS:
            return _WORLDS[short]
        raise WorldLookupError(
            f"world {name!r}: module {module!r} registers no world named {short!r}; "
            f"registered: {', '.join(sorted(_WORLDS))}"
        )
    _load_entry_points(name)
    if name in _WORLDS:
        return _WORLDS[name]
    known = registered_worlds()
    message = f"unknown world {name!r}; registered worlds: {', '.join(known)}"
    guess = difflib.get_close_matches(name, known, n=1)
    if guess:
        message += f" (did you mean {guess[0]!r}?)"
    raise WorldLookupError(message)


def registered_worlds() -> list[str]:
    """Names of every world registered or offered by an installed entry point, sorted."""
    _load_entry_points(None)
    return sorted(_WORLDS)


def make_world(section: Any, num_envs: int | None = None, device: str = "cpu") -> World:
    """A new world for config section `section` (num_envs defaults to the section's own)."""
    entry = world_entry(section.name)
    return entry.make(section, section.num_envs if num_envs is None else num_envs, device)


def _load_entry_points(name: str | None) -> None:
    """Import the modules of the entry points called `name` (all of them for None)."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if (name is None or point.name == name) and point.name not in _WORLDS:
            importlib.import_module(point.value.partition(":")[0])
