"""Strict YAML files: duplicate keys, bytes that are not UTF-8, directories and syntax errors are
one error naming the file and the line, in configs, value programs and reward machines."""

import pytest

from composable_rl.config import ConfigError, load_config
from composable_rl.homeostasis import ValueProgramError, load_value_program
from composable_rl.languages.reward_machine import RewardMachineError
from composable_rl.languages.reward_machine_yaml import load_reward_machine
from composable_rl.languages.yaml_file import YamlFileError, parse_yaml, read_yaml
from tests.scripts import run_script


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "key 'a' is given twice, on lines 1 and 3"),
        ("env:\n  x: 1\nenv:\n  y: 2\n", "key 'env' is given twice, on lines 1 and 3"),
        ("env:\n  x: 1\n  y: 2\n  x: 3\n", "key 'x' is given twice, on lines 2 and 4"),
        ("- {a: 1, a: 2}\n", "key 'a' is given twice, on lines 1 and 1"),
        ("a: [1\n", "invalid YAML: "),
    ],
)
def test_duplicate_keys_at_any_depth_and_syntax_errors_name_the_lines(text, message):
    with pytest.raises(YamlFileError, match=f"^f.yaml: {message}"):
        parse_yaml(text, "f.yaml")


def test_merged_keys_may_be_overridden_and_plain_files_read_as_before():
    text = "base: &b {x: 1, y: 2}\nrun:\n  <<: *b\n  x: 3\n"
    assert parse_yaml(text, "f.yaml") == {"base": {"x": 1, "y": 2}, "run": {"x": 3, "y": 2}}


def test_files_that_are_not_utf8_or_are_directories_are_named(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("seed: 0\n# café\n".encode("latin-1"))
    with pytest.raises(
        YamlFileError, match=r"latin.yaml: line 2, column 6: byte 0xe9 is not UTF-8"
    ):
        read_yaml(path)
    with pytest.raises(YamlFileError, match="is a directory, not a YAML file"):
        read_yaml(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_yaml(tmp_path / "missing.yaml")


def test_configs_value_programs_and_reward_machines_refuse_duplicate_keys(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("seed: 0\ntotal_steps: 100\nenv:\n  num_envs: 4\ntotal_steps: 200\n")
    with pytest.raises(ConfigError, match="run.yaml: key 'total_steps' is given twice, on lines 2"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"^override 'env=\{a: 1, a: 2\}': key 'a' is given"):
        load_config("configs/quickstart.yaml", ["env={a: 1, a: 2}"])
    program = tmp_path / "values.yaml"
    program.write_text("variables:\n  energy: {setpoint: 0.4}\n  energy: {setpoint: 0.5}\n")
    with pytest.raises(ValueProgramError, match="key 'energy' is given twice, on lines 2 and 3"):
        load_value_program(program, ["food"])
    machine = tmp_path / "task.yaml"
    machine.write_text("states: [u0, u1]\ninitial: u0\nstates: [u2]\n")
    with pytest.raises(RewardMachineError, match="key 'states' is given twice, on lines 1 and 3"):
        load_reward_machine(machine, ["a"])


def test_train_reports_a_duplicate_key_in_one_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("seed: 0\nenv:\n  num_envs: 4\nenv:\n  num_envs: 8\n")
    done = run_script("train.py", "--config", str(config))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"train.py: {config}: key 'env' is given twice, on lines 2 and 4\n"
