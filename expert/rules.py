"""Rules as data: load rules/*.yaml, validate, compile conditions for durable_rules, and evaluate them.

A rule is `id`, `title`, `when`, `then`, `because`, `source` (+ optional `scope`, `examples`).
Conditions test fields of ONE candidate fact (see candidates.FACT_FIELDS):

    {path: value}                     equality
    {path: {op: value}}               op in eq, ne, gt, ge, lt, le, in
    {path: {op: {field: other.path}}} compare with another field of the same fact
    {all: [...]} / {any: [...]}       nesting

The compiled form uses only operators durable_rules handles safely (one key per object, same-fact
`$m` references, no `$not`). The same conditions are evaluated in Python for `--why-not`, which also
gives a differential test of the engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from .candidates import FACT_FIELDS, get_path
from .errors import RuleError, located
from .paths import data_dir
from .schema import Field, opt, validate
from .yamlio import LineDict, load_yaml_file, plain

FACTORS = ("model_size", "precision", "power_cost", "ecosystem", "scalability", "workload")
ACTIONS = ("reject", "warn", "prefer", "penalize", "suggest")
OPS = {"eq": None, "ne": "$neq", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte", "in": None}
SCOPES = ("budget",)
# Distinct leaf tests (alpha nodes) per factor's ruleset: durable_rules raises error 303 at assert time
# beyond 64 simultaneously matching alpha nodes; 48 keeps a margin (shared/durable-rules.md, point 9).
MAX_PATTERNS_PER_FACTOR = 48

RULE_SPEC: dict[str, Field] = {
    "id": Field("str"),
    "title": Field("str"),
    "when": Field("map"),
    "then": Field("any"),
    "because": Field("str"),
    "source": Field("str"),
    "scope": opt("str", choices=SCOPES),
    "examples": opt("map", spec={"fires": opt("list"), "does_not_fire": opt("list")}),
}

_FILE_SPEC = {"factor": Field("str", choices=FACTORS), "rules": Field("list")}


@lru_cache(maxsize=1)
def sandbox():
    """The sandboxed Jinja environment `because` templates render in; built on first use so that
    commands which render nothing never import Jinja."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters["gib"] = lambda v: f"{v:,.1f} GiB"
    env.filters["money"] = lambda v: f"{v:,.0f}"
    env.filters["pct"] = lambda v: f"{v * 100:.0f} %"
    env.filters["num"] = lambda v, d=1: f"{v:,.{d}f}"
    return env


@dataclass(frozen=True)
class Action:
    kind: str
    weight: float = 0.0


@dataclass
class Rule:
    id: str
    factor: str
    title: str
    when: Any
    action: Action
    because: str
    source: str
    scope: str | None
    file: str
    line: int
    examples: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def template(self):
        return sandbox().from_string(self.because)

    @cached_property
    def paths(self) -> list[str]:
        out: list[str] = []
        _collect_paths(self.when, out)
        return list(dict.fromkeys(out))

    def render(self, fact: dict[str, Any]) -> str:
        return " ".join(self.template.render(**fact).split())

    def compiled(self, rename=None) -> dict[str, Any]:
        return {"$and": [{"kind": "candidate"}, compile_condition(self.when, rename)]}


@dataclass
class RuleSet:
    rules: list[Rule]
    digest: str

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def by_factor(self) -> dict[str, list[Rule]]:
        out: dict[str, list[Rule]] = {f: [] for f in FACTORS}
        for r in self.rules:
            out[r.factor].append(r)
        return {f: rs for f, rs in out.items() if rs}


# ------------------------------------------------------------------------------------------- parsing


def _parse_then(v: Any) -> Action | str:
    if isinstance(v, str):
        if v in ("reject", "warn", "suggest"):
            return Action(v)
        return f"then: {v!r} is not an action (allowed: reject, warn, suggest, {{prefer: w}}, {{penalize: w}})"
    if isinstance(v, dict) and len(v) == 1:
        (k, w), = v.items()
        if k in ("prefer", "penalize"):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < 1:
                return f"then.{k}: weight must be a number between 0 and 1, got {w!r}"
            return Action(k, float(w))
    return "then: expected reject | warn | suggest | {prefer: weight} | {penalize: weight}"


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


def _leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    (key, val), = node.items()
    if key in ("$and", "$or"):
        return [leaf for sub in val for leaf in _leaves(sub)]
    return [node]


def _collect_paths(cond: Any, out: list[str]) -> None:
    (key, val), = cond.items()
    if key in ("all", "any"):
        for sub in val:
            _collect_paths(sub, out)
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


# ------------------------------------------------------------------------------------------- loading


_UNSAFE = re.compile(r"__\w*|\b(?:mro|globals|builtins|import|getattr|self|cycler|joiner|namespace|lipsum)\b")


def _unsafe(rule: Rule) -> str | None:
    bad = _UNSAFE.search(rule.because)
    if bad:
        return f"because: unsafe template: reaches for {bad.group(0)!r} (templates may only read fact fields)"
    return None


def _render_probe(rule: Rule) -> str | None:
    """Compile the `because` template in the sandbox and render it against a sample fact."""
    msg = _unsafe(rule)
    if msg:
        return msg
    from jinja2 import TemplateSyntaxError
    from jinja2.exceptions import SecurityError, UndefinedError

    try:
        tmpl = sandbox().from_string(rule.because)
    except TemplateSyntaxError as exc:
        return f"because: template syntax error: {exc.message}"
    sample = sample_fact()
    try:
        tmpl.render(**sample)
    except SecurityError as exc:
        return f"because: unsafe template rejected by the sandbox ({exc})"
    except UndefinedError as exc:
        return f"because: refers to something the facts do not have ({exc.message})"
    except Exception as exc:  # noqa: BLE001 - any render failure is a rule error
        return f"because: template fails to render ({type(exc).__name__}: {exc})"
    return None


def sample_fact() -> dict[str, Any]:
    """A fact with every field present and of the right type: the shape `because` templates render on."""
    defaults = {str: "x", int: 1, float: 1.0, bool: True}
    fact: dict[str, Any] = {}
    for path, typ in FACT_FIELDS.items():
        cur = fact
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = defaults[typ if isinstance(typ, type) else typ[0]]
    return fact


def parse_rule_file(doc: Any, file: str, problems: list[str] | None = None, probe: bool = False) -> list[Rule]:
    """Parse one rule file. With `problems`, collect every problem instead of raising on the first."""

    def fail(msg: str) -> None:
        if problems is None:
            raise RuleError(msg)
        problems.append(msg)

    try:
        validate(doc, _FILE_SPEC, file=file, entry="", error=RuleError)
    except RuleError as exc:
        fail(str(exc))
        return []
    factor = doc["factor"]
    rules: list[Rule] = []
    for entry in doc["rules"]:
        rid = entry.get("id", "?") if isinstance(entry, dict) else "?"
        line = getattr(entry, "line", doc["rules"].line)
        where = f"rule {rid!r}"
        try:
            validate(entry, RULE_SPEC, file=file, entry=where, error=RuleError)
        except RuleError as exc:
            fail(str(exc))
            continue
        line_of = entry.line_of if isinstance(entry, LineDict) else (lambda _k, _line=line: _line)
        if not rid.startswith(f"{factor}/"):
            fail(located(file, line_of("id"), where, f"id must start with '{factor}/' (the file's factor)"))
            continue
        action = _parse_then(entry["then"])
        if isinstance(action, str):
            fail(located(file, line_of("then"), where, action))
            continue
        msg = check_condition(entry["when"])
        if msg:
            fail(located(file, line_of("when"), where, msg))
            continue
        rule = Rule(id=rid, factor=factor, title=entry["title"], when=plain(entry["when"]), action=action,
                    because=entry["because"], source=entry["source"], scope=entry.get("scope"), file=file,
                    line=line, examples=plain(entry.get("examples") or {}), raw=plain(entry))
        msg = _render_probe(rule) if probe else _unsafe(rule)
        if msg:
            fail(located(file, line_of("because"), where, msg))
            continue
        if not rule.source.strip():
            fail(located(file, line_of("source"), where, "source: must name a datasheet, paper or document"))
            continue
        rules.append(rule)
    return rules


def load_rules(root: Path | None = None, problems: list[str] | None = None, probe: bool = False) -> RuleSet:
    """Load every rules/*.yaml (sorted: rule order, hence firing order, is stable).

    `probe` also renders every `because` template against a sample fact (what `expert rules check`
    does); the unsafe-template check runs on every load."""
    base = root if root is not None else data_dir("rules")
    if not base.is_dir():
        raise RuleError(f"{base}: rules directory not found")
    files = sorted(base.glob("*.yaml"))
    if not files:
        raise RuleError(f"{base}: no rule files (*.yaml)")
    digest = hashlib.sha256()
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for path in files:
        display = f"rules/{path.name}"
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        try:
            doc = load_yaml_file(path, display)
        except Exception as exc:  # noqa: BLE001 - surfaced as a rule error with file and line
            if problems is None:
                raise RuleError(str(exc)) from None
            problems.append(str(exc))
            continue
        parsed = parse_rule_file(doc, display, problems, probe)
        patterns = len({json.dumps(leaf, sort_keys=True) for r in parsed for leaf in _leaves(r.compiled())})
        if patterns > MAX_PATTERNS_PER_FACTOR:
            msg = located(display, 1, "", f"{patterns} distinct condition patterns in one factor; durable_rules "
                          f"is only safe up to {MAX_PATTERNS_PER_FACTOR}: split the factor's rules")
            if problems is None:
                raise RuleError(msg)
            problems.append(msg)
        for rule in parsed:
            if rule.id in seen:
                msg = located(display, rule.line, f"rule {rule.id!r}",
                              f"duplicate id (first defined in {seen[rule.id].file}:{seen[rule.id].line})")
                if problems is None:
                    raise RuleError(msg)
                problems.append(msg)
                continue
            seen[rule.id] = rule
            rules.append(rule)
    return RuleSet(rules, digest.hexdigest()[:16])
