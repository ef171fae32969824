"""Safe, bounded YAML loading that remembers line numbers, so data errors can point at file:line.

Data files come from pull requests and team overlays (`rules check` and `audit` run them in CI), so
reading one is bounded: regular files only (a FIFO or /dev/zero named *.yaml must not hang or exhaust
memory), at most MAX_DATA_FILE_BYTES, no YAML aliases (an alias bomb expands exponentially), and at most
MAX_DEPTH levels of nesting.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExpertError

if TYPE_CHECKING:
    import yaml

# PyYAML is imported on the first parse, not with this module: a process whose data and policy come from the
# validated cache (store/cache.py, core/policy.py) never parses YAML, and `import yaml` costs 10-20 ms.


class LineDict(dict):
    """A mapping that knows the line of itself and of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0


@functools.cache
def _loader() -> type:
    """The safe loader class, built on first use: libyaml's C parser when present (several times faster);
    the constructors below stay the safe ones."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc, valid-type]
        pass

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    _Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
    return _Loader


def _construct_error(problem: str, node: yaml.Node) -> Exception:
    from yaml.constructor import ConstructorError

    return ConstructorError(None, None, problem, node.start_mark)


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> LineDict:
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            raise _construct_error("unhashable key", key_node)
        if key in result:
            raise _construct_error(f"duplicate key {key!r}", key_node)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: Any, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


def _construct_timestamp(loader: Any, node: yaml.ScalarNode) -> str:
    # Dates stay strings: facts compare and print them verbatim.
    return loader.construct_scalar(node)


# The largest data file (tests/validation/measurements.yaml) is ~0.4 MiB.
MAX_DATA_FILE_BYTES = 4 * 2**20
MAX_DEPTH = 64


def read_data_file(path: Path, display: str | None = None, limit: int = MAX_DATA_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is an ExpertError naming it."""
    name = display or str(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ExpertError(f"{name}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise ExpertError(f"{name}: cannot read: not a valid path") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ExpertError(f"{name}: not a regular file (data files must be plain files)")
        if st.st_size > limit:
            raise ExpertError(f"{name}: {st.st_size:,} bytes is over the {limit:,}-byte limit for a data file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ExpertError(f"{name}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:  # grew while being read
        raise ExpertError(f"{name}: over the {limit:,}-byte limit for a data file")
    return b"".join(chunks)


def _check_tree(root: yaml.Node, name: str) -> None:
    """Refuse aliases (a node reached twice) and deep nesting before anything is constructed."""
    import yaml

    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        line = node.start_mark.line + 1
        if id(node) in seen:
            raise ExpertError(f"{name}:{line}: YAML aliases (*name) are not allowed in data files; "
                              "write the value out")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise ExpertError(f"{name}:{line}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += [(k, depth + 1), (v, depth + 1)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, depth + 1) for v in node.value]


def load_yaml_text(text: str, name: str) -> Any:
    """Parse YAML text with the safe loader; a syntax error names the file and line."""
    import yaml

    try:
        loader = _loader()(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_tree(node, name)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise ExpertError(f"{name}:{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ExpertError(f"{name}: malformed YAML: {exc}") from None
    except RecursionError:  # the pure-Python parser (no libyaml) recurses per nesting level
        raise ExpertError(f"{name}: nested deeper than {MAX_DEPTH} levels") from None


def load_yaml_bytes(data: bytes, name: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExpertError(f"{name}: not UTF-8 text") from None
    return load_yaml_text(text, name)


def load_yaml_file(path: Path, display: str | None = None) -> Any:
    name = display or str(path)
    return load_yaml_bytes(read_data_file(path, name), name)


def plain(value: Any) -> Any:
    """Convert LineDict/LineList trees back to plain dicts/lists (for JSON and hashing)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value
