"""Boolean tasks: naming goal sets with expressions over the heads, and listing every task.

Goals are described by which heads they satisfy (membership [G, K] bool). `set_expression`
writes a compact DNF that selects a given goal set; `boolean_tasks` lists every distinct goal set
the Boolean algebra over the heads can express, each with its expression, so that evaluations
can sweep all zero-shot Boolean tasks of a world.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import lru_cache, reduce

import torch
from torch import Tensor

from composable_rl.languages.expressions import Binary, Expr, Head, Unary, to_string
from composable_rl.languages.tokens import NAME

__all__ = ["boolean_tasks", "set_expression"]


def _literal(name: str, value: bool) -> Expr:
    """The head `name`, or its negation when `value` is False."""
    return Head(name) if value else Unary("~", Head(name))


def _goal_atoms(
    names: Sequence[str], membership: Tensor
) -> tuple[list[tuple[bool, ...]], list[int]]:
    """The distinct head patterns (atoms) of the goals, and the atom index of every goal."""
    rows = membership.bool().cpu()
    if rows.dim() != 2 or rows.shape[1] != len(names) or not names:
        raise ValueError(f"membership must be [G, {len(names)}] for heads {list(names)}")
    patterns = [tuple(bool(v) for v in row) for row in rows.tolist()]
    atoms = list(dict.fromkeys(patterns))
    return atoms, [atoms.index(p) for p in patterns]


@lru_cache(maxsize=32)
def _cube_covers(atoms: tuple[tuple[bool, ...], ...]) -> dict[tuple[tuple[int, bool], ...], int]:
    """Every conjunction of literals true for some atom, with the bitmask of the atoms it selects.

    Cached (callers must not mutate the result) because `boolean_tasks` covers every target of
    the same atoms; a literal's atoms are one bitmask, so a cube's cover is their AND.
    """
    width = len(atoms[0])
    literal = {
        (k, v): sum(1 << i for i, atom in enumerate(atoms) if atom[k] == v)
        for k in range(width)
        for v in (False, True)
    }
    everything = (1 << len(atoms)) - 1
    cubes: dict[tuple[tuple[int, bool], ...], int] = {}
    for atom in atoms:
        for keep in range(2**width):
            cube = tuple((k, atom[k]) for k in range(width) if keep >> k & 1)
            if cube not in cubes:
                cubes[cube] = reduce(operator.and_, (literal[lit] for lit in cube), everything)
    return cubes


def set_expression(head_names: Sequence[str], membership: Tensor, target: Tensor) -> str:
    """Compact DNF over the heads that selects exactly the target goals (names a goal set).

    membership [G, K] bool says which goals satisfy which head; target [G] bool is the goal set,
    which must be non-empty and treat goals with equal rows (atoms) alike. The text is a single
    head, a negation or a conjunction where that suffices, else a greedy cover by conjunctions
    of literals; row patterns no goal has are don't-cares. The set of all goals is `h | ~h`.
    """
    names = list(head_names)
    atoms, goal_atom = _goal_atoms(names, membership)
    if target.shape != (len(goal_atom),):
        raise ValueError(f"target must be a [{len(goal_atom)}] goal mask, got {list(target.shape)}")
    wanted = target.bool().cpu().tolist()
    first: dict[int, int] = {}
    for goal, atom in enumerate(goal_atom):
        twin = first.setdefault(atom, goal)
        if wanted[goal] != wanted[twin]:
            raise ValueError(
                f"goals {twin} and {goal} have the same head values, so a target cannot hold "
                "only one of them"
            )
    bits = sum(1 << atom for atom, goal in first.items() if wanted[goal])
    if not bits:
        raise ValueError("target selects no goal; the expressions name non-empty goal sets")
    fits = {c: cover for c, cover in _cube_covers(tuple(atoms)).items() if cover & ~bits == 0}
    chosen, missing = [], bits
    while missing:
        cube = max(fits, key=lambda c: (bin(fits[c] & missing).count("1"), -len(c)))
        chosen.append(cube)
        missing &= ~fits[cube]
    if chosen == [()]:
        terms = [Binary("|", Head(names[0]), _literal(names[0], False))]
    else:
        terms = [
            reduce(lambda a, b: Binary("&", a, b), [_literal(names[k], v) for k, v in c])
            for c in chosen
        ]
    return to_string(reduce(lambda a, b: Binary("|", a, b), terms))


def boolean_tasks(head_names: Sequence[str], membership: Tensor) -> list[tuple[str, Tensor]]:
    """Every distinct non-empty goal set the Boolean algebra over the heads can express.

    membership [G, K] bool says which goals satisfy which head. Goals with equal rows (atoms)
    cannot be told apart, so the tasks are the non-empty unions of atoms, each returned once as
    (expression from `set_expression`, goal mask [G] bool), sorted by the number of literals
    in the expression, then text.
    """
    atoms, goal_atom = _goal_atoms(head_names, membership)
    if len(atoms) > 16:
        raise ValueError(f"{len(atoms)} distinct goal rows give too many tasks to enumerate")
    tasks = []
    for target in range(1, 2 ** len(atoms)):
        mask = torch.tensor([target >> a & 1 for a in goal_atom], dtype=torch.bool)
        text = set_expression(head_names, membership, mask)
        tasks.append((len(NAME.findall(text)), text, mask.to(membership.device)))
    tasks.sort(key=lambda task: task[:2])
    return [(text, mask) for _, text, mask in tasks]
