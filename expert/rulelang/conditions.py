"""Rule conditions: validate, compile to durable_rules' JSON form, and evaluate in Python.

    {path: value}                     equality
    {path: {op: value}}               op in eq, ne, gt, ge, lt, le, in
    {path: {op: {field: other.path}}} compare with another field of the same fact
    {all: [...]} / {any: [...]}       nesting

The compiled form uses only operators durable_rules handles safely (one key per object, same-fact
`$m` references, no `$not`). The same conditions are evaluated in Python for `--why-not`, which also
gives a differential test of the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .vocabulary import FACT_FIELDS, get_path

OPS = {"eq": None, "ne": "$neq", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte", "in": None}

# Numeric thresholds the engine compares exactly (see engine.engine_number): zero, or a magnitude in
# [1e-3, 1e15).
NUMBER_RANGE = (1e-3, 1e15)


def _check_value(path: str, value: Any) -> str | None:
    want = FACT_FIELDS[path]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
        lo, hi = NUMBER_RANGE
        if not lo <= abs(value) < hi:
            return (f"{path}: threshold {value!r} is outside what the engine compares safely "
                    f"(0 or a magnitude from {lo:g} to {hi:g})")
    if isinstance(value, dict):
        if set(value) != {"field"} or not isinstance(value["field"], str):
            return f"{path}: a reference must be {{field: other.path}}"
        ref = value["field"]
        if ref not in FACT_FIELDS:
            return f"{path}: reference to unknown fact field {ref!r}"
        if FACT_FIELDS[ref] is not FACT_FIELDS[path]:
            return f"{path}: cannot compare with {ref} (different types)"
        return None
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if want is bool and isinstance(value, bool):
        return None
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return None
    if want is str and isinstance(value, str):
        return None
    return f"{path}: expected a {want.__name__} value, got {value!r}"


def check_condition(cond: Any, where: str = "when") -> str | None:
    """Return an error message for the first problem in a condition tree, or None."""
    if not isinstance(cond, dict) or len(cond) != 1:
        return f"{where}: each condition must be a mapping with exactly one key"
    (key, val), = cond.items()
    if key in ("all", "any"):
        if not isinstance(val, list) or not val:
            return f"{where}.{key}: expected a non-empty list of conditions"
        for i, sub in enumerate(val):
            msg = check_condition(sub, f"{where}.{key}[{i}]")
            if msg:
                return msg
        return None
    if key not in FACT_FIELDS or key in ("kind", "id"):
        return f"{where}: unknown fact field {key!r} (the estimator and catalog produce no such field)"
    if isinstance(val, dict) and "field" not in val:
        if len(val) != 1:
            return f"{where}.{key}: an operator mapping needs exactly one operator"
        (op, arg), = val.items()
        if op not in OPS:
            return f"{where}.{key}: unknown operator {op!r} (allowed: {', '.join(OPS)})"
        if op == "in":
            if not isinstance(arg, list) or not arg:
                return f"{where}.{key}.in: expected a non-empty list"
            for a in arg:
                msg = _check_value(key, a)
                if msg:
                    return f"{where}.{msg}"
            return None
        if op in ("gt", "ge", "lt", "le") and FACT_FIELDS[key] not in (int, float):
            return f"{where}.{key}.{op}: ordering needs a numeric field"
        msg = _check_value(key, arg)
        return f"{where}.{msg}" if msg else None
    msg = _check_value(key, val)
    return f"{where}.{msg}" if msg else None


def leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    (key, val), = node.items()
    if key in ("$and", "$or"):
        return [leaf for sub in val for leaf in leaves(sub)]
    return [node]


def collect_paths(cond: Any, out: list[str]) -> None:
    (key, val), = cond.items()
    if key in ("all", "any"):
        for sub in val:
            collect_paths(sub, out)
        return
    out.append(key)
    if isinstance(val, dict):
        arg = next(iter(val.values()))
        if isinstance(arg, dict) and "field" in arg:
            out.append(arg["field"])
        if "field" in val:
            out.append(val["field"])


def compile_condition(cond: dict[str, Any], rename=None) -> dict[str, Any]:
    """Translate one validated condition into durable_rules' JSON form (one key per object).

    `rename` maps a fact path to the key the engine's facts use (the engine asserts flat facts)."""
    (key, val), = cond.items()
    if key == "all":
        return {"$and": [compile_condition(c, rename) for c in val]}
    if key == "any":
        return {"$or": [compile_condition(c, rename) for c in val]}
    op, arg = ("eq", val)
    if isinstance(val, dict) and "field" not in val:
        (op, arg), = val.items()
    if rename is not None:
        key = rename(key)
        if isinstance(arg, dict):
            arg = {"field": rename(arg["field"])}
    if op == "in":
        return {"$or": [{key: a} for a in arg]}
    rhs = {"$m": arg["field"]} if isinstance(arg, dict) else arg
    if op == "eq":
        return {key: rhs}
    return {OPS[op]: {key: rhs}}


def evaluate(cond: dict[str, Any], fact: dict[str, Any], trace: list[tuple[str, Any, bool]] | None = None) -> bool:
    """Python evaluation of a condition, recording (path, value, held) for every leaf it reads."""
    (key, val), = cond.items()
    if key == "all":
        results = [evaluate(c, fact, trace) for c in val]
        return all(results)
    if key == "any":
        results = [evaluate(c, fact, trace) for c in val]
        return any(results)
    op, arg = ("eq", val)
    if isinstance(val, dict) and "field" not in val:
        (op, arg), = val.items()
    actual = get_path(fact, key)
    if isinstance(arg, dict):
        arg = get_path(fact, arg["field"])
    if actual is None or arg is None:
        held = False
    elif op == "eq":
        held = actual == arg
    elif op == "ne":
        held = actual != arg
    elif op == "in":
        held = actual in arg
    else:
        held = {"gt": actual > arg, "ge": actual >= arg, "lt": actual < arg, "le": actual <= arg}[op]
    if trace is not None:
        trace.append((key, actual, held))
    return held


def threshold_paths(cond: Any) -> list[str]:
    """Fact paths compared with a number literal somewhere in the condition (each needs a `basis`)."""
    (key, val), = cond.items()
    if key in ("all", "any"):
        return list(dict.fromkeys(p for sub in val for p in threshold_paths(sub)))
    arg = val
    if isinstance(val, dict) and "field" not in val:
        (_, arg), = val.items()
    values = arg if isinstance(arg, list) else [arg]
    numeric = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return [key] if numeric else []


def comparisons(cond: Any) -> Iterator[tuple[str, str, Any]]:
    """Every leaf of a condition as (path, operator, argument): a literal, a list of them (`in`), or
    {field: other.path}."""
    (key, val), = cond.items()
    if key in ("all", "any"):
        for sub in val:
            yield from comparisons(sub)
        return
    op, arg = ("eq", val)
    if isinstance(val, dict) and "field" not in val:
        (op, arg), = val.items()
    yield key, op, arg


def compared_literals(cond: Any, numbers: dict[str, set]) -> None:
    """Collect, per fact path, the number literals the condition compares it with. The engine's equivalence
    classes are built from these: two values on the same side of, or equal to, the same literals satisfy
    exactly the same comparisons."""
    for key, _, arg in comparisons(cond):
        if isinstance(arg, dict):
            continue
        for v in arg if isinstance(arg, list) else [arg]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                numbers.setdefault(key, set()).add(v)


def compared_fields(cond: Any, pairs: set[tuple[str, str]]) -> None:
    """Collect the (path, other path) pairs the condition compares with each other. The engine's classes keep,
    for two numbers compared with each other, only which of them is larger (or that they are equal): every such
    comparison holds or fails alike for two facts with the same order of the pair."""
    pairs.update((key, arg["field"]) for key, _, arg in comparisons(cond) if isinstance(arg, dict))


def compared_strings(cond: Any, strings: dict[str, set], exact: set[str]) -> None:
    """Collect, per fact path, the string literals the condition tests it for equality with (eq, ne, in), and
    the paths a string is otherwise compared by (ordered, or with another field: `exact`). For the engine's
    classes a string compared only for equality with literals counts only as the literal it equals, or as
    none of them."""
    for key, op, arg in comparisons(cond):
        if isinstance(arg, dict):
            exact.update((key, arg["field"]))
            continue
        for v in arg if isinstance(arg, list) else [arg]:
            if isinstance(v, str):
                if op in ("eq", "ne", "in"):
                    strings.setdefault(key, set()).add(v)
                else:
                    exact.add(key)
