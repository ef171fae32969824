"""Safe YAML loading that remembers line numbers, so data errors can point at file:line."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import yaml

from .errors import ExpertError


class LineDict(dict):
    """A mapping that knows the line of itself and of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0


# libyaml's C parser when present (several times faster); the constructors below stay the safe ones.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            raise yaml.constructor.ConstructorError(None, None, "unhashable key", key_node.start_mark)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    # Dates stay strings: facts compare and print them verbatim.
    return loader.construct_scalar(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml_text(text: str, name: str) -> Any:
    """Parse YAML text with the safe loader; a syntax error names the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from (C)SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise ExpertError(f"{name}:{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ExpertError(f"{name}: malformed YAML: {exc}") from None


def load_yaml_file(path: Path, display: str | None = None) -> Any:
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpertError(f"{name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ExpertError(f"{name}: not UTF-8 text") from None
    return load_yaml_text(text, name)


def plain(value: Any) -> Any:
    """Convert LineDict/LineList trees back to plain dicts/lists (for JSON and hashing)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value
