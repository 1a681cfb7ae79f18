"""Config schema: loading, overrides, error messages, validation and round trips."""

import dataclasses
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composable_rl.config import (
    AgentConfig,
    Config,
    ConfigError,
    describe,
    doc,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


def error_of(data=None, overrides=()) -> str:
    """Message of the ConfigError raised by building a config from `data` and `overrides`."""
    with pytest.raises(ConfigError) as info:
        if overrides:
            load_config(None, overrides)
        else:
            from_dict(Config, data)
    return str(info.value)


def dotted_keys(cls, prefix=""):
    """Every dotted key of a config dataclass."""
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        yield key
        if dataclasses.is_dataclass(f.type):
            yield from dotted_keys(f.type, key + ".")


def test_defaults_are_valid_and_match_schema():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.agent.hidden == [256, 256]
    assert cfg.env.object_positions is None
    assert cfg.replay.capacity == 100_000


def test_every_field_has_a_doc():
    def fields(cls):
        for f in dataclasses.fields(cls):
            yield f
            if dataclasses.is_dataclass(f.type):
                yield from fields(f.type)

    for f in fields(Config):
        assert f.metadata.get("doc"), f.name


def test_mutable_defaults_are_not_shared():
    a, b = Config(), Config()
    a.agent.hidden.append(7)
    assert b.agent.hidden == [256, 256]


@pytest.mark.parametrize(
    ("data", "key", "valid"),
    [
        ({"seeed": 1}, "'seeed'", "total_steps"),
        ({"agent": {"lrr": 0.1}}, "'agent.lrr'", "target_period"),
    ],
)
def test_unknown_key_names_key_and_lists_valid_keys(data, key, valid):
    message = error_of(data)
    assert key in message
    assert valid in message


def test_unknown_key_suggests_closest():
    assert "did you mean 'lr'" in error_of({"agent": {"lrr": 0.1}})


def test_unknown_override_key_gets_the_yaml_error():
    assert error_of(overrides=["agent.lrr=0.1"]) == error_of({"agent": {"lrr": 0.1}})
    message = error_of(overrides=["nope.x=1"])
    assert "'nope'" in message and "agent" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"agent": {"lr": "fast"}}, "agent.lr: expected float, got 'fast' (str)"),
        ({"agent": {"lr": True}}, "agent.lr: expected float, got True (bool)"),
        ({"seed": 1.5}, "seed: expected int, got 1.5 (float)"),
        ({"agent": {"double_q": 1}}, "agent.double_q: expected bool, got 1 (int)"),
        ({"env": {"colours": "blue"}}, "env.colours: expected list[str], got 'blue' (str)"),
        ({"agent": {"hidden": [64, "x"]}}, "agent.hidden[1]: expected int, got 'x' (str)"),
        ({"agent": 3}, "agent: expected a section of keys, got 3 (int)"),
        ({"device_graphs": "yes"}, "device_graphs: expected bool | 'auto', got 'yes' (str)"),
        (
            {"env": {"object_positions": 3}},
            "env.object_positions: expected list[list[int]] | None, got 3 (int)",
        ),
    ],
)
def test_wrong_type_names_key_type_and_value(data, expected):
    assert error_of(data) == expected


def test_literal_error_lists_allowed_values():
    message = error_of({"agent": {"encoder": "rnn"}})
    assert message == "agent.encoder: expected one of 'auto', 'mlp', 'cnn', got 'rnn' (str)"


def test_int_accepted_as_float_and_scientific_string_parsed():
    cfg = from_dict(Config, {"agent": {"max_grad_norm": 5, "lr": "1e-3"}})
    assert cfg.agent.max_grad_norm == 5.0 and isinstance(cfg.agent.max_grad_norm, float)
    assert cfg.agent.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("data", "key", "allowed"),
    [
        ({"agent": {"gamma": 1.0}}, "agent.gamma", "[0, 1)"),
        ({"agent": {"alpha": -0.1}}, "agent.alpha", "[0, inf)"),
        ({"agent": {"tau": 0.0}}, "agent.tau", "(0, 1]"),
        ({"agent": {"lr": 0.0}}, "agent.lr", "(0, inf)"),
        ({"agent": {"hidden": [64, 0]}}, "agent.hidden[1]", "[1, inf)"),
        ({"tasks": {"single_head_prob": 1.5}}, "tasks.single_head_prob", "[0, 1]"),
        ({"tasks": {"epsilon_fraction": -0.1}}, "tasks.epsilon_fraction", "[0, 1]"),
        ({"replay": {"batch_size": 0}}, "replay.batch_size", "[1, inf)"),
        ({"env": {"num_envs": 0}}, "env.num_envs", "[1, inf)"),
        ({"env": {"object_positions": [[0, -1]]}}, "env.object_positions[0][1]", "[0, inf)"),
    ],
)
def test_range_errors_name_key_and_range(data, key, allowed):
    message = error_of(data)
    assert message.startswith(f"{key}: ")
    assert allowed in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"env": {"heads": ["bleu"]}}, "env.heads: unknown head 'bleu'"),
        ({"env": {"colours": ["blue", "blue"]}}, "env.colours: duplicate"),
        (
            {"env": {"object_positions": [[1, c] for c in range(1, 6)] + [[3]]}},
            "object_positions[5]: expected [",
        ),
        (
            {"env": {"object_positions": [[1, c] for c in range(1, 6)] + [[0, 4]]}},
            "env.object_positions[5]: [0, 4] is a wall of layout 'four_rooms'",
        ),
        (
            {"env": {"object_positions": [[1, c] for c in range(1, 6)] + [[1, 2]]}},
            "object_positions[5]: [1, 2] is also object_positions[1]",
        ),
        (
            {"env": {"object_positions": [[1, c] for c in range(1, 6)] + [[13, 2]]}},
            "outside the 13x13 layout",
        ),
        ({"env": {"object_positions": [[1, 2]]}}, "object_positions: expected 6 [row, col] pairs"),
        ({"env": {"shapes": ["circle", "blue"]}}, "env.shapes: names shared with colours"),
        ({"env": {"r_min": 3.0}}, "env.r_min: must be below r_max"),
        ({"replay": {"capacity": 10, "batch_size": 20}}, "replay.batch_size: must not exceed"),
    ],
)
def test_cross_field_rules(data, fragment):
    assert fragment in error_of(data)


def test_overrides_parse_yaml_values():
    cfg = load_config(
        None,
        [
            "agent.hidden=[128,128]",
            "env.colours=[blue]",
            "env.object_positions=[[1,2],[3,4]]",
            "agent.encoder=cnn",
            "run_name=",
            "tasks.epsilon_end=0",
        ],
    )
    assert cfg.agent.hidden == [128, 128]
    assert cfg.env.object_positions == [[1, 2], [3, 4]]
    assert cfg.agent.encoder == "cnn"
    assert cfg.run_name == ""
    assert cfg.tasks.epsilon_end == 0.0


def test_override_null_and_precedence_over_yaml(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 3\nenv:\n  object_positions: [[1, 1]]\n  colours: [blue]\n")
    cfg = load_config(path, ["env.object_positions=null", "seed=4"])
    assert cfg.env.object_positions is None
    assert cfg.seed == 4
    assert cfg.env.colours == ["blue"]


@pytest.mark.parametrize("bad", ["agent.lr", "=3", "seed=[1"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="override"):
        load_config(None, [bad])


def test_override_into_scalar_is_refused(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 3\n")
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        load_config(path, ["seed.x=1"])


def test_yaml_file_with_empty_sections(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("total_steps: 10000\nagent:\nreplay: {}\nenv:\n  layout: open5\n")
    cfg = load_config(path)
    assert cfg.total_steps == 10000
    assert cfg.agent == AgentConfig()
    assert cfg.env.layout == "open5"


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_yaml_file_is_refused(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="empty.yaml: the file is empty"):
        load_config(path)
    assert load_config(None) == Config()


def test_learning_starts_must_come_before_the_end():
    with pytest.raises(ConfigError, match="replay.learning_starts: updates begin after 5000 steps"):
        load_config(None, ["total_steps=5000"])
    assert load_config(None, ["total_steps=5000", "replay.capacity=4000"]).total_steps == 5000


def test_old_checkpoint_every_key_moves_into_the_checkpoint_section():
    cfg = from_dict(Config, {"checkpoint_every": 4000, "checkpoint": {"keep_last": 1}})
    assert (cfg.checkpoint.every, cfg.checkpoint.keep_last) == (4000, 1)


def test_bad_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("agent: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(path)


def test_non_mapping_yaml_and_missing_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_dict_and_yaml(tmp_path):
    cfg = load_config(
        None,
        [
            "seed=7",
            "agent.hidden=[32]",
            "agent.lr=1e-4",
            "env.shapes=[circle]",
            "env.object_positions=[[1,1],[2,3],[4,5]]",
        ],
    )
    data = to_dict(cfg)
    assert from_dict(Config, data) == cfg
    save_config(cfg, tmp_path / "out" / "cfg.yaml")
    assert load_config(tmp_path / "out" / "cfg.yaml") == cfg


@settings(max_examples=30, deadline=None)
@given(
    lr=st.floats(min_value=1e-12, max_value=1e6, allow_nan=False),
    r_max=st.floats(min_value=0.0, max_value=1e9, allow_nan=False),
    hidden=st.lists(st.integers(1, 4096), max_size=4),
)
def test_round_trip_property(tmp_path_factory, lr, r_max, hidden):
    cfg = Config()
    cfg.agent.lr, cfg.env.r_max, cfg.agent.hidden = lr, r_max, hidden
    path = tmp_path_factory.mktemp("cfg") / "cfg.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg


def test_describe_mentions_every_key():
    text = describe()
    lines = text.splitlines()
    for key in dotted_keys(Config):
        assert any(line.split()[0] == key for line in lines), key
    assert "Entropy temperature of the heads" in text
    assert "'mlp' | 'cnn'" in text
    assert "[0, 1)" in text


@dataclasses.dataclass
class Extras:
    """Ad-hoc schema exercising the generic types the project schema does not use yet."""

    size: tuple[int, int]
    scales: tuple[float, ...] = doc((), "Any number of floats.", gt=0)
    weights: dict[str, float] = doc({}, "Named floats.")
    mode: Literal["a", "b"] | None = doc(None, "Optional literal.")


def test_generic_types_and_required_keys():
    cfg = from_dict(Extras, {"size": [3, 4], "scales": [1, 2.5], "weights": {"x": 1}, "mode": "b"})
    assert cfg == Extras(size=(3, 4), scales=(1.0, 2.5), weights={"x": 1.0}, mode="b")
    assert from_dict(Extras, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="size: missing required key"):
        from_dict(Extras, {})
    with pytest.raises(ConfigError, match=r"size: expected tuple\[int, int\], got \[1\]"):
        from_dict(Extras, {"size": [1]})
    with pytest.raises(ConfigError, match=r"scales\[1\]: expected a value in \(0, inf\)"):
        from_dict(Extras, {"size": [1, 1], "scales": [1, 0]})
    with pytest.raises(ConfigError, match="weights.x: expected float"):
        from_dict(Extras, {"size": [1, 1], "weights": {"x": "heavy"}})
    with pytest.raises(ConfigError) as info:
        from_dict(Extras, {"size": [1, 1], "mode": "c"})
    assert str(info.value) == "mode: expected 'a' | 'b' | None, got 'c' (str)"


def test_keys_of_the_other_world_family_are_refused():
    office = load_config(None, ["env.name=office", "env.task=F a", "env.starts=standard"])
    assert (office.env.name, office.env.task, office.env.starts) == ("office", "F a", "standard")
    with pytest.raises(ConfigError, match="unknown config key 'env.starts'; valid keys in 'env'"):
        load_config(None, ["env.starts=standard"])
    with pytest.raises(ConfigError, match=r"'env.colours'; valid keys in 'env': name, .*starts"):
        load_config(None, ["env.name=office", "env.colours=[red]"])


def test_every_world_section_is_listed_and_an_unknown_world_is_named():
    text = describe()
    for name in ("object_rooms", "office", "foraging", "gymnasium"):
        assert f"env ({name})" in text
    with pytest.raises(ConfigError, match="env.name: unknown world 'ofice'.*did you mean 'office'"):
        load_config(None, ["env.name=ofice"])
    with pytest.raises(ConfigError, match="env.name: world 'nowhere_pkg:grid': cannot import"):
        load_config(None, ["env.name=nowhere_pkg:grid"])


def test_a_section_saved_in_the_single_schema_format_still_loads():
    old = {
        "name": "foraging",
        "num_envs": 8,
        "layout": "four_rooms",
        "colours": ["beige"],
        "heads": [],
        "max_steps": 100,
        "r_max": 2.0,
        "starts": "anywhere",
        "task": "",
        "foraging": {"reward": "drive_reduction", "regrow": 0, "levels_bins": 5},
        "observation": "indices",
    }
    env = from_dict(Config, {"env": old}).env
    assert (env.name, env.reward, env.levels_bins, env.max_steps) == (
        "foraging",
        "drive_reduction",
        5,
        100,
    )
    rooms = from_dict(Config, {"env": {**old, "name": "object_rooms"}}).env
    assert (rooms.name, rooms.colours, rooms.max_steps) == ("object_rooms", ["beige"], 100)
    assert not hasattr(rooms, "starts") and not hasattr(rooms, "foraging")
