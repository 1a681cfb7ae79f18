"""Every command line of the README and the docs agrees with the code: the scripts and modules
exist and define every option the line uses, the configs load with the line's overrides, and
the task expressions, LTL formulas and reward-machine files it names parse; and the README's
zero-shot lines run."""

import re
import shlex
from pathlib import Path

import pytest

from composable_rl.config import load_config
from composable_rl.languages.expressions import parse
from composable_rl.languages.ltl import from_ltl
from composable_rl.languages.reward_machine_yaml import load_reward_machine
from envs.office import ALPHABET, PROPOSITIONS
from tests.scripts import run_script

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED_OPTIONS = ROOT / "experiments" / "common.py"  # options every experiment takes


def command_lines(page: Path) -> list[str]:
    """The shell lines of a page's bash blocks, continuations joined, placeholders such as
    `[--set key=value ...]` dropped."""
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\[[^\]]*\]", "", line)
            if line.strip():
                lines.append(line)
    return lines


def python_commands() -> list[tuple[str, list[str]]]:
    """(page: line, argv) of every `python` command, after `&&` where the line chains one."""
    found = []
    for page in PAGES:
        for line in command_lines(page):
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv[:1] == ["python"] and argv[1:2] != ["-c"]:
                    found.append((f"{page.name}: {part.strip()}", argv[1:]))
    return found


def source_of(argv: list[str]) -> tuple[str, list[str]]:
    """The text of the script or module a command runs, and its arguments."""
    if argv[0] == "-m":
        path = ROOT / (argv[1].replace(".", "/") + ".py")
        args = argv[2:]
    else:
        path, args = ROOT / argv[0], argv[1:]
    assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"
    text = path.read_text()
    if path.parent.name == "experiments":
        text += SHARED_OPTIONS.read_text()
    return text, args


def values(args: list[str], option: str) -> list[str]:
    """Every value given to `option` in args."""
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


COMMANDS = python_commands()


def test_the_pages_have_command_lines_to_check():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_command_line_agrees_with_the_code(where, argv):
    text, args = source_of(argv)
    for option in (arg for arg in args if arg.startswith("--")):
        assert f'"{option}"' in text, f"{where}: no option {option}"
    for config in values(args, "--config"):
        load_config(ROOT / config, values(args, "--set"))
    for task in values(args, "--task"):
        parse(task)
    for formula in values(args, "--ltl"):
        from_ltl(formula, PROPOSITIONS, ALPHABET)
    for machine in values(args, "--rm"):
        load_reward_machine(ROOT / machine, PROPOSITIONS, ALPHABET)


def test_the_readmes_composition_lines_run(world_value_run, office_run, tmp_path):
    """The README's zero-shot command lines, as written, on the session's tiny checkpoints: Boolean
    and linear tasks on a world-value run, temporal tasks on an Office run (fewer episodes)."""
    lines = [argv for where, argv in COMMANDS if where.startswith("README.md: python zero_shot.py")]
    ran = 0
    for argv in lines:
        temporal = "--ltl" in argv or "--rm" in argv
        if "--weights" in argv:
            continue  # a continuous-action run (mo_hopper): not quick
        run = office_run if temporal else world_value_run
        args = [str(run) if arg == "runs/<run>" else arg for arg in argv[1:]]
        args = [str(tmp_path / arg) if arg.endswith(".json") else arg for arg in args]
        done = run_script("zero_shot.py", *args, "--episodes", "10")
        assert done.returncode == 0, (argv, done.stderr)
        ran += 1
    assert ran >= 4
