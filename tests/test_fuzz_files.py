"""Seeded fuzzing of the YAML files users write: configs (every shipped one) and value programs,
mutated by character, by line, by value and by byte. Every file loads or raises the project's
own error (ConfigError, ValueProgramError); any other exception is a bug.

FUZZ_FILES sets how many files of each kind (default 800; `FUZZ_FILES=10000 pytest
tests/test_fuzz_files.py` for a long run).
"""

import os
import random
from pathlib import Path

import pytest

from composable_rl.config import ConfigError, load_config
from composable_rl.homeostasis import ValueProgramError, load_value_program

SEED = 20_261_203
COUNT = int(os.environ.get("FUZZ_FILES", "800"))
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
PROGRAM = ROOT / "configs" / "values" / "default.yaml"
JUNK = list(":-{}[],&*!|>%@`'\"#\t\x00 é") + ["  ", "\n", ": ", "- ", "<<: "]
VALUES = ["-1", "0", "1e999", ".nan", "-.inf", "[]", "{}", "null", "true", "x", "~", "[1, 2]"]
VALUES += ["99999999999999999999", "{a: 1}", "'", "0x10", "1_000", "-0.0", "[[[]]]", "*a"]


def mutate(rng: random.Random, text: str) -> bytes:
    """`text` changed one to three times by character, line, value or byte."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        kind = rng.randrange(6)
        i = rng.randrange(len(lines))
        if kind == 0 and text:  # one character deleted, doubled or replaced
            j = rng.randrange(len(text))
            text = text[:j] + rng.choice(["", text[j] * 2, rng.choice(JUNK)]) + text[j + 1 :]
        elif kind == 1:  # a line repeated (a duplicate key), dropped or moved
            line = lines[i]
            del lines[i]
            if rng.random() < 0.7:
                lines.insert(i, line)
            lines.insert(rng.randrange(len(lines) + 1), line)
            text = "\n".join(lines)
        elif kind == 2 and ":" in lines[i]:  # a value replaced
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(VALUES)}"
            text = "\n".join(lines)
        elif kind == 3:  # a line indented or dedented
            lines[i] = (
                rng.choice(["  ", "    ", "\t"]) + lines[i]
                if rng.random() < 0.5
                else lines[i].lstrip()
            )
            text = "\n".join(lines)
        elif kind == 4:  # a key and value of another file's shape
            lines.insert(i, f"{rng.choice(['env', 'agent', 'x', 'variables', 'weights'])}:")
            text = "\n".join(lines)
        else:  # cut short
            text = text[: rng.randrange(len(text) + 1)]
    data = text.encode("utf-8")
    if rng.random() < 0.05:  # a byte that is not UTF-8
        j = rng.randrange(len(data) + 1)
        data = data[:j] + bytes([rng.choice([0xFF, 0xE9, 0x80])]) + data[j:]
    return data


def files(tmp_path: Path, sources: list[Path], seed: int) -> list[Path]:
    """COUNT mutated copies of the sources, written to tmp_path."""
    rng = random.Random(seed)
    texts = [source.read_text() for source in sources]
    found = []
    for n in range(COUNT):
        path = tmp_path / f"f{n}.yaml"
        path.write_bytes(mutate(rng, rng.choice(texts)))
        found.append(path)
    return found


def test_every_mutated_config_loads_or_raises_a_config_error(tmp_path):
    loaded = 0
    for path in files(tmp_path, CONFIGS, SEED):
        try:
            load_config(path)
            loaded += 1
        except ConfigError:
            pass
        except Exception as err:  # the bug this test is for: any error but the project's own
            pytest.fail(f"{type(err).__name__} for {path.read_bytes()[:300]!r}: {err}")
    assert (
        0 < loaded < COUNT
    )  # both outcomes occur: the mutations are neither all fatal nor all harmless


def test_every_mutated_value_program_loads_or_raises_a_value_program_error(tmp_path):
    loaded = 0
    for path in files(tmp_path, [PROGRAM], SEED + 1):
        try:
            load_value_program(path, ["food", "water", "salt"])
            loaded += 1
        except ValueProgramError:
            pass
        except Exception as err:
            pytest.fail(f"{type(err).__name__} for {path.read_bytes()[:300]!r}: {err}")
    assert 0 < loaded < COUNT
