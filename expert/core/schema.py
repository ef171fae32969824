"""A small declarative validator for the YAML catalogs and rule files.

Each spec maps a key to a Field; validation walks a LineDict and reports the first problem as
`file:line: entry-id: field.path: message`, which is what a reviewer needs to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ExpertError, located
from .yamlio import LineDict


@dataclass(frozen=True)
class Field:
    kind: str  # str | int | num | bool | list | map | any
    required: bool = True
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    item: Field | None = None  # for list
    spec: dict[str, Field] | None = None  # for map with known keys
    values: Field | None = None  # for map with free keys
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)


def opt(kind: str, **kw: Any) -> Field:
    return Field(kind, required=False, **kw)


# Why a number has its value: a measurement, a document, or a named engineering assumption. Rules, the
# decision policy and the platform prices all state their bases this way.
BASIS_KINDS = ("measured", "documented", "assumption")
BASIS_PATTERN = re.compile(r"(measured|documented|assumption): \S")


def basis_field() -> Field:
    return Field("str", check=lambda s: None if BASIS_PATTERN.match(s) else
                 "must start with measured:, documented: or assumption:")


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "bool": (bool,),
    "list": (list,),
    "map": (dict,),
}


class SchemaError(ExpertError):
    pass


def validate(
    value: Any, spec: dict[str, Field], *, file: str, entry: str, path: str = "", error=SchemaError
) -> None:
    """Validate a mapping against a spec; unknown keys and missing required keys are errors."""
    if not isinstance(value, dict):
        raise error(located(file, getattr(value, "line", 0), entry, f"{path or 'entry'}: expected a mapping"))
    line_of = value.line_of if isinstance(value, LineDict) else (lambda _k: 0)
    for key in value:
        if key not in spec:
            allowed = ", ".join(sorted(spec))
            raise error(
                located(file, line_of(key), entry, f"{path}{key}: unknown field (allowed: {allowed})")
            )
    for key, fld in spec.items():
        where = f"{path}{key}"
        if key not in value:
            if fld.required:
                raise error(located(file, getattr(value, "line", 0), entry, f"{where}: required field missing"))
            continue
        _check(value[key], fld, file=file, entry=entry, where=where, line=line_of(key), error=error)


def _check(v: Any, fld: Field, *, file: str, entry: str, where: str, line: int, error) -> None:
    def fail(msg: str) -> None:
        raise error(located(file, line, entry, f"{where}: {msg}"))

    if v is None:
        if not fld.nullable:
            fail("must not be empty")
        return
    if fld.kind != "any":
        types = _TYPES[fld.kind]
        if isinstance(v, bool) and fld.kind in ("int", "num"):
            fail(f"expected a number, got {v!r}")
        if not isinstance(v, types):
            fail(f"expected {'a number' if fld.kind == 'num' else 'a ' + fld.kind}, got {type(v).__name__} {v!r}")
    if fld.kind in ("int", "num"):
        if isinstance(v, float) and not math.isfinite(v):
            fail("must be a finite number")
        if fld.min is not None and v < fld.min:
            fail(f"{v} is below the minimum {fld.min}")
        if fld.max is not None and v > fld.max:
            fail(f"{v} is above the maximum {fld.max}")
    if fld.choices is not None and v not in fld.choices:
        fail(f"{v!r} is not one of {', '.join(map(str, fld.choices))}")
    if fld.kind == "list" and fld.item is not None:
        for i, item in enumerate(v):
            _check(item, fld.item, file=file, entry=entry, where=f"{where}[{i}]",
                   line=getattr(v, "line", line), error=error)
    if fld.kind == "map":
        if fld.spec is not None:
            validate(v, fld.spec, file=file, entry=entry, path=f"{where}.", error=error)
        elif fld.values is not None:
            line_of = v.line_of if isinstance(v, LineDict) else (lambda _k: line)
            for k, item in v.items():
                _check(item, fld.values, file=file, entry=entry, where=f"{where}.{k}", line=line_of(k),
                       error=error)
    if fld.check is not None:
        msg = fld.check(v)
        if msg:
            fail(msg)


def numeric_paths(value: Any, prefix: str = "") -> Iterable[str]:
    """Dotted paths of every numeric leaf (booleans excluded): the facts that need a source."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("sources", "notes"):
                continue
            yield from numeric_paths(v, f"{prefix}{k}.")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix.rstrip(".")
