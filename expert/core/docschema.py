"""The JSON documents the tool writes: their schema version, the shipped JSON Schema, and a validator.

`expert/resources/schema/advice.schema.json` documents every JSON document (advise, estimate, compare, sweep
rows, errors). `validate` checks a document against it with the subset of JSON Schema that file uses (type,
const, enum, required, properties, additionalProperties: false, items, minItems/maxItems, minimum, pattern,
anyOf, local $ref), so the suite needs no jsonschema package.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "resources" / "schema" / "advice.schema.json"

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _is(value: Any, kind: str) -> bool:
    if kind in ("number", "integer"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and (kind == "number" or float(value).is_integer())
    return isinstance(value, _TYPES[kind])


def errors(doc: Any, schema: dict[str, Any] | None = None, root: dict[str, Any] | None = None,
           where: str = "$") -> list[str]:
    """Every place `doc` breaks `schema` (default: the shipped one), as 'path: what'; empty when it conforms."""
    root = root or load_schema()
    s = root if schema is None else schema
    out: list[str] = []
    if "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        out += errors(doc, target, root, where)
    if "anyOf" in s:
        branches = [errors(doc, b, root, where) for b in s["anyOf"]]
        if all(branches):
            # The branch that got furthest into the document says best what is wrong.
            out += max(branches, key=lambda errs: (max(len(e.split(": ", 1)[0]) for e in errs),
                                                   -sum(e.startswith(f"{where}: expected ") for e in errs)))
    if "type" in s:
        kinds = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is(doc, k) for k in kinds):
            return out + [f"{where}: expected {' or '.join(kinds)}, got {type(doc).__name__}"]
    if "const" in s and doc != s["const"]:
        out.append(f"{where}: expected {s['const']!r}, got {doc!r}")
    if "enum" in s and doc not in s["enum"]:
        out.append(f"{where}: {doc!r} is not one of {s['enum']}")
    if isinstance(doc, (int, float)) and not isinstance(doc, bool) and "minimum" in s and doc < s["minimum"]:
        out.append(f"{where}: {doc} is below the minimum {s['minimum']}")
    if isinstance(doc, str) and "pattern" in s and not re.search(s["pattern"], doc):
        out.append(f"{where}: {doc!r} does not match {s['pattern']}")
    if isinstance(doc, dict):
        out += [f"{where}: missing {k!r}" for k in s.get("required", []) if k not in doc]
        props = s.get("properties", {})
        for k, v in doc.items():
            if k in props:
                out += errors(v, props[k], root, f"{where}.{k}")
            elif s.get("additionalProperties") is False:
                out.append(f"{where}: unexpected {k!r}")
    if isinstance(doc, list):
        if len(doc) < s.get("minItems", 0) or len(doc) > s.get("maxItems", len(doc)):
            out.append(f"{where}: {len(doc)} items, expected {s.get('minItems', 0)} to {s.get('maxItems', 'any')}")
        if "items" in s:
            for i, v in enumerate(doc):
                out += errors(v, s["items"], root, f"{where}[{i}]")
    return out


def validate(doc: Any, kind: str) -> list[str]:
    """Errors of `doc` as the document `kind` (advice, estimate, compare, sweep_row, error)."""
    return errors(doc, {"$ref": f"#/$defs/{kind}"})
