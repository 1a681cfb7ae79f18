"""The library's layers import only downwards: maths imports nothing else of the library,
languages only maths, the rest of the library never the run infrastructure, and the library
never the worlds, the agents or the scripts."""

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "composable_rl"
# what each layer may import, besides itself
ALLOWED = {
    "maths": set(),
    "languages": {"maths"},
    "core": {"maths", "languages"},
    "run": {"maths", "languages", "core"},
}


def layer(module: str) -> str:
    """The layer of a module name under composable_rl ('composable_rl.maths.oracle' -> maths)."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in ALLOWED else "core"


def imported(path: Path) -> set[str]:
    """The modules a file imports by absolute name (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


FILES = sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_imports_run_downwards(path):
    module = ".".join(("composable_rl", *path.relative_to(LIBRARY).with_suffix("").parts))
    own = layer(module)
    for name in imported(path):
        top = name.split(".")[0]
        assert top not in ("agents", "envs", "train", "zero_shot", "sweep"), (module, name)
        if top == "composable_rl" and name != "composable_rl":
            other = layer(name)
            assert other == own or other in ALLOWED[own], f"{module} imports {name} ({other})"


def test_the_layers_exist_and_hold_their_modules():
    assert {p.parent.name for p in FILES} >= {"maths", "languages", "run"}
    assert (LIBRARY / "maths" / "functional.py").is_file()
    assert (LIBRARY / "languages" / "operator_table.py").is_file()
    assert (LIBRARY / "run" / "checkpoint.py").is_file()
