"""The project's YAML files (configs, value programs, reward machines), read strictly: a key given
twice in one mapping, a byte that is not UTF-8, a directory where a file belongs and a syntax
error are each one `YamlFileError` that names the file and the line, where YAML itself would
keep the last duplicate without a word and Python would raise a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"


class YamlFileError(ValueError):
    """A YAML file that cannot be read as given; the message names the file and the place."""


class _DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping."""


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key that a mapping already holds (merged keys `<<` aside)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """As the safe loader, once every explicit key of the mapping is known to be new."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the safe loader reports it
                continue
            if first is not None:
                raise _DuplicateKey(f"key {key!r} is given twice, on lines {first} and {line}")
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, where: str) -> Any:
    """The YAML document `text` (from `where`, for messages), duplicate keys refused."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as err:
        raise YamlFileError(f"{where}: {err}") from None
    except yaml.YAMLError as err:
        raise YamlFileError(f"{where}: invalid YAML: {err}") from None


def read_yaml(path: str | Path) -> Any:
    """The YAML document of the file at `path` (a FileNotFoundError where there is none)."""
    path = Path(path)
    if path.is_dir():
        raise YamlFileError(f"{path}: is a directory, not a YAML file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise YamlFileError(
            f"{path}: line {line}, column {column}: byte 0x{raw[err.start]:02x} is not UTF-8 "
            "text; save the file as UTF-8"
        ) from None
    return parse_yaml(text, str(path))
