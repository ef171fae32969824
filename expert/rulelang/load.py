"""Rules as data: load rules/*.yaml and validate them (conditions: conditions.py; engine: engine.py).

A rule is `id`, `title`, `when`, `then`, `because`, `sources` (ids of the facts/ source registry),
`basis` (why each threshold and weight has its value) + optional `scope`, `examples`.
Conditions test fields of ONE candidate fact (vocabulary.FACT_FIELDS).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from ..core.errors import RuleError, located
from ..core.paths import data_dir
from ..core.schema import Field, opt, validate
from ..core.yamlio import LineDict, load_yaml_file, plain
from .conditions import check_condition, collect_paths, compile_condition, leaves, threshold_paths
from .vocabulary import sample_fact

FACTORS = ("model_size", "precision", "power_cost", "ecosystem", "scalability", "workload")
ACTIONS = ("reject", "warn", "prefer", "penalize", "suggest")
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
    "sources": opt("list", item=Field("str")),
    "source": opt("str"),  # legacy free text, being replaced by `sources` ids
    "basis": opt("map", values=Field("str")),
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
    sources: tuple[str, ...]
    basis: dict[str, str]
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
        collect_paths(self.when, out)
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
                    because=entry["because"], sources=tuple(entry.get("sources") or ()),
                    basis=plain(entry.get("basis") or {}), scope=entry.get("scope"), file=file,
                    line=line, examples=plain(entry.get("examples") or {}), raw=plain(entry))
        msg = _render_probe(rule) if probe else _unsafe(rule)
        if msg:
            fail(located(file, line_of("because"), where, msg))
            continue
        if not rule.sources and not str(entry.get("source") or "").strip():
            fail(located(file, line_of("id"), where, "sources: must list the ids of the documents behind the rule "
                         "(facts/*.yaml `sources:` registry)"))
            continue
        msg = check_basis(rule)
        if msg and rule.sources:
            fail(located(file, line_of("basis"), where, msg))
            continue
        rules.append(rule)
    return rules


BASIS_KINDS = ("measured", "documented", "assumption")
_BASIS = re.compile(r"(measured|documented|assumption): \S")


def check_basis(rule: Rule) -> str | None:
    """Every numeric threshold and every prefer/penalize weight states why it has its value."""
    need = set(threshold_paths(rule.when))
    if rule.action.kind in ("prefer", "penalize"):
        need.add("weight")
    have = set(rule.basis)
    if need - have:
        return f"basis: missing for {', '.join(sorted(need - have))} (every threshold and weight needs a basis)"
    if have - need:
        return f"basis: {', '.join(sorted(have - need))} is not a threshold or weight of this rule"
    for key, text in rule.basis.items():
        if not _BASIS.match(text):
            return (f"basis.{key}: must start with one of {', '.join(k + ':' for k in BASIS_KINDS)} "
                    "followed by the measurement, document or named assumption")
    return None


def check_sources(ruleset: RuleSet, registry: dict[str, Any]) -> list[str]:
    """Problems with the rules' source ids against the facts/ source registry: unknown ids, and
    sources without an address (a rule's reader must be able to open what it cites)."""
    problems = []
    for r in ruleset.rules:
        for sid in r.sources:
            src = registry.get(sid)
            if src is None:
                problems.append(located(r.file, r.line, f"rule {r.id!r}", f"sources: unknown source id {sid!r} "
                                        "(define it under `sources:` in a facts/*.yaml file)"))
            elif not (getattr(src, "url", None) or getattr(src, "repo", None)):
                problems.append(located(r.file, r.line, f"rule {r.id!r}",
                                        f"sources: {sid!r} has no address (url or repo/path)"))
    return problems


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
        patterns = len({json.dumps(leaf, sort_keys=True) for r in parsed for leaf in leaves(r.compiled())})
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
