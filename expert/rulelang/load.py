"""Rules as data: load rules/*.yaml and validate them (conditions: conditions.py; engine: engine.py).

A rule is `id`, `title`, `when`, `then`, `because`, `sources` (ids of the facts/ source registry),
`basis` (why each threshold and weight has its value) + optional `scope`, `examples`, and for a `suggest`
rule `points_to`: the configuration its advice leads to, as candidate fields read from fact paths (e.g.
`{count: fit.min_count}`), so the advice can drop a suggestion that leads to a configuration it rejected.
Conditions test fields of ONE candidate fact (vocabulary.FACT_FIELDS).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from ..core.errors import RuleError, located
from ..core.paths import data_dir
from ..core.schema import BASIS_KINDS, BASIS_PATTERN, Field, opt, validate
from ..core.yamlio import LineDict, load_yaml_bytes, plain, read_data_file
from .conditions import check_condition, collect_paths, compile_condition, leaves, threshold_paths
from .vocabulary import PER_BUDGET, sample_fact

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
    "sources": Field("list", item=Field("str")),
    "basis": opt("map", values=Field("str")),
    "scope": opt("str", choices=SCOPES),
    "examples": opt("map", spec={"fires": opt("list"), "does_not_fire": opt("list")}),
    "points_to": opt("map", values=Field("str")),
}
POINTS_TO_FIELDS = ("count", "precision")  # candidate fields a suggestion may change (gpu stays the candidate's)

_FILE_SPEC = {"factor": Field("str", choices=FACTORS), "rules": Field("list")}


# A `because` is one sentence over the facts: bounded in source, in output, and in what it may compute,
# so a rule from a pull request cannot hang or exhaust `rules check`, `audit` or a user's run.
MAX_BECAUSE_CHARS = 2000
MAX_BECAUSE_OUTPUT = 2000
_MAX_SEQUENCE = 10_000  # length of a string or list an operator may build
_MAX_INT_BITS = 4096
_MAX_EXPONENT = 64
_MAX_DIGITS = 6

# Template syntax a `because` may use: output, conditions and expressions; no loops, assignments,
# macros, calls, includes or blocks (each could loop, recurse or reach outside the fact).
_ALLOWED_NODES = ("Template", "Output", "TemplateData", "Name", "Const", "Getattr", "Getitem", "Slice", "Filter",
                  "Test", "CondExpr", "If", "Compare", "Operand", "And", "Or", "Not", "Neg", "Pos", "Add", "Sub",
                  "Mul", "Div", "FloorDiv", "Mod", "Pow", "Concat", "Tuple", "List", "Keyword")
# Filters: ours (number formatting) and Jinja's that cannot build large values from small ones.
_ALLOWED_FILTERS = ("gib", "money", "pct", "num", "round", "int", "float", "abs", "lower", "upper", "title",
                    "capitalize", "trim", "default", "d", "length", "count", "first", "last", "min", "max", "join",
                    "string")


def _digits(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= _MAX_DIGITS:
        raise ValueError(f"digits must be a whole number from 0 to {_MAX_DIGITS}, got {d!r}")
    return d


def _check_binop(op: str, left: Any, right: Any) -> None:
    seqs = (str, list, tuple)
    if op == "%" and isinstance(left, str):
        raise ValueError("'%' string formatting is not allowed; use the num, money, pct or gib filters")
    if op == "*" and (isinstance(left, seqs) or isinstance(right, seqs)):
        seq, n = (left, right) if isinstance(left, seqs) else (right, left)
        if isinstance(n, int) and len(seq) * max(n, 0) > _MAX_SEQUENCE:
            raise ValueError(f"repetition would build more than {_MAX_SEQUENCE:,} items")
    elif op == "+" and isinstance(left, seqs) and isinstance(right, seqs):
        if len(left) + len(right) > _MAX_SEQUENCE:
            raise ValueError(f"concatenation would build more than {_MAX_SEQUENCE:,} items")
    elif op in ("*", "**") and isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if op == "**" and (abs(right) > _MAX_EXPONENT or abs(left) > 2**64):
            raise ValueError(f"'**' is limited to exponents up to {_MAX_EXPONENT} and bases up to 2**64")
        if op == "*" and isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise ValueError(f"integers are limited to {_MAX_INT_BITS} bits")


@lru_cache(maxsize=1)
def sandbox():
    """The sandboxed Jinja environment `because` templates render in; built on first use so that
    commands which render nothing never import Jinja."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BecauseSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    env = BecauseSandbox(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()  # range, lipsum, cycler, joiner, namespace, dict: nothing a sentence needs
    kept = {k: env.filters[k] for k in _ALLOWED_FILTERS if k in env.filters}
    env.filters.clear()
    env.filters.update(kept)
    env.filters["gib"] = lambda v: f"{v:,.1f} GiB"
    env.filters["money"] = lambda v: f"{v:,.0f}"
    env.filters["pct"] = lambda v: f"{v * 100:.0f} %"
    env.filters["num"] = lambda v, d=1: f"{v:,.{_digits(d)}f}"
    return env


# Compiled `because` templates of this process, by source. A warm process takes them from the per-user
# cache (store/cache.py registers a bundle per rule set, read on the first render) instead of parsing
# and compiling every template again; the code is what `from_string` would compile, byte for byte.
_CODE: dict[str, Any] = {}
_MAX_CODE = 4096  # distinct sources kept (fuzzing `rules check` compiles many once)
_BUNDLES: list[Callable[[], dict[str, Any]]] = []


def add_compiled_bundle(loader: Callable[[], dict[str, Any]]) -> None:
    """Register a source -> code mapping, fetched (once) when a template is first needed."""
    _BUNDLES.append(loader)


def because_code(source: str) -> Any:
    """The code object `sandbox().from_string(source)` would compile."""
    while _BUNDLES:
        loader = _BUNDLES.pop()
        try:
            bundle = loader()
        except Exception:  # noqa: BLE001 - a cache only saves time: compile instead
            continue
        for src, code in bundle.items():
            _CODE.setdefault(src, code)
    code = _CODE.get(source)
    if code is None:
        code = sandbox().compile(source)
        if len(_CODE) < _MAX_CODE:
            _CODE[source] = code
    return code


def because_signature() -> str:
    """Everything besides the source that shapes a `because` template's compiled code: Python's and Jinja's
    versions, the sandbox's settings and this module (its filters are checked at compile time)."""
    import importlib.util

    import jinja2
    from jinja2.bccache import bc_magic

    env = sandbox()
    return repr((jinja2.__version__, bc_magic, importlib.util.MAGIC_NUMBER, type(env).__mro__[1].__name__,
                 env.sandboxed, sorted(env.intercepted_binops), sorted(env.intercepted_unops), env.autoescape,
                 env.undefined.__name__, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline,
                 env.newline_sequence, env.optimized, env.block_start_string, env.variable_start_string,
                 env.comment_start_string, env.line_statement_prefix, env.line_comment_prefix,
                 sorted(env.extensions), sorted(env.filters), sorted(env.tests),
                 hashlib.sha256(Path(__file__).read_bytes()).hexdigest()))


def check_because_syntax(source: str) -> str | None:
    """Why a `because` template is not allowed (size, syntax, constructs), or None."""
    from jinja2 import TemplateSyntaxError, nodes

    if len(source) > MAX_BECAUSE_CHARS:
        return f"because: {len(source):,} characters; at most {MAX_BECAUSE_CHARS:,}"
    try:
        tree = sandbox().parse(source)
    except TemplateSyntaxError as exc:
        return f"because: template syntax error: {exc.message}"
    for node in tree.find_all(nodes.Node):
        kind = type(node).__name__
        if kind not in _ALLOWED_NODES:
            what = {"For": "loops", "Call": "function calls", "Assign": "{% set %}", "AssignBlock": "{% set %}",
                    "Macro": "macros"}.get(kind, f"{kind} nodes")
            return (f"because: {what} are not allowed (line {node.lineno} of the template); a because is one "
                    "sentence of fact fields, filters, conditions and arithmetic")
        if isinstance(node, nodes.Filter) and node.name not in _ALLOWED_FILTERS:
            return (f"because: filter {node.name!r} is not allowed; allowed: {', '.join(_ALLOWED_FILTERS)}")
    return None


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
    points_to: dict[str, str] = field(default_factory=dict)

    @cached_property
    def template(self):
        env = sandbox()
        return env.template_class.from_code(env, because_code(self.because), env.make_globals(None), None)

    @cached_property
    def paths(self) -> list[str]:
        out: list[str] = []
        collect_paths(self.when, out)
        return list(dict.fromkeys(out))

    @cached_property
    def text_paths(self) -> frozenset[str]:
        """The fact paths its `because` text reads (`gpu.id`, `cost.capex`; a bare name for a whole group or a
        top-level field): nothing else of the fact can change the rendered text."""
        from jinja2 import nodes

        out: set[str] = set()

        def chain(n: Any) -> str | None:
            if isinstance(n, nodes.Name):
                return n.name
            if isinstance(n, nodes.Getattr):
                head = chain(n.node)
                return None if head is None else f"{head}.{n.attr}"
            if isinstance(n, nodes.Getitem) and isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str):
                head = chain(n.node)
                return None if head is None else f"{head}.{n.arg.value}"
            return None

        def walk(n: Any) -> None:
            path = chain(n) if isinstance(n, (nodes.Getattr, nodes.Getitem)) else None
            if path is not None:
                out.add(path)
                return
            if isinstance(n, nodes.Name):
                out.add(n.name)
                return
            for child in n.iter_child_nodes():
                walk(child)

        walk(sandbox().parse(self.because))
        return frozenset(out)

    @cached_property
    def budget_free(self) -> bool:
        """Its text reads no field of PER_BUDGET, nor a group holding one: the same text for every candidate of a
        budget ladder's configuration (candidates.Basis)."""
        return not any(p == q or q.startswith(p + ".") or p.startswith(q + ".")
                       for p in self.text_paths for q in PER_BUDGET)

    def render(self, fact: dict[str, Any]) -> str:
        try:
            text = " ".join(self.template.render(**fact).split())
        except Exception as exc:  # noqa: BLE001 - a fact the sample did not foresee: name the rule, no traceback
            raise RuleError(located(self.file, self.line, f"rule {self.id!r}",
                                    f"because: fails to render ({type(exc).__name__}: {exc})")) from None
        return text if len(text) <= MAX_BECAUSE_OUTPUT else text[:MAX_BECAUSE_OUTPUT - 1] + "…"

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
    """Check the `because` template's constructs, then render it in the sandbox against a sample fact."""
    msg = _unsafe(rule) or check_because_syntax(rule.because)
    if msg:
        return msg
    from jinja2.exceptions import SecurityError, UndefinedError

    try:
        # Compiled once: the probe's compilation is the one the rule renders with.
        out = rule.template.render(**sample_fact())
    except SecurityError as exc:
        return f"because: unsafe template rejected by the sandbox ({exc})"
    except UndefinedError as exc:
        return f"because: refers to something the facts do not have ({exc.message})"
    except Exception as exc:  # noqa: BLE001 - any render failure is a rule error
        return f"because: template fails to render ({type(exc).__name__}: {exc})"
    if len(out) > MAX_BECAUSE_OUTPUT:
        return f"because: renders to {len(out):,} characters; at most {MAX_BECAUSE_OUTPUT:,}"
    return None


def parse_rule_file(doc: Any, file: str, problems: list[str] | None = None, probe: bool = True) -> list[Rule]:
    """Parse one rule file. With `problems`, collect every problem instead of raising on the first.

    Every `because` is checked and render-tested on every load; `probe` is accepted for older callers."""

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
                    line=line, examples=plain(entry.get("examples") or {}), raw=plain(entry),
                    points_to=plain(entry.get("points_to") or {}))
        msg = _render_probe(rule)
        if msg:
            fail(located(file, line_of("because"), where, msg))
            continue
        if not rule.sources:
            fail(located(file, line_of("sources"), where, "sources: must list the ids of the documents behind the "
                         "rule (facts/*.yaml `sources:` registry)"))
            continue
        msg = check_basis(rule)
        if msg:
            fail(located(file, line_of("basis"), where, msg))
            continue
        msg = check_points_to(rule)
        if msg:
            fail(located(file, line_of("points_to"), where, msg))
            continue
        rules.append(rule)
    return rules




def check_points_to(rule: Rule) -> str | None:
    """`points_to` only on suggestions, only candidate fields a suggestion changes, each read from a fact path."""
    if not rule.points_to:
        return None
    if rule.action.kind != "suggest":
        return "points_to: only a `suggest` rule leads to another configuration"
    from .vocabulary import FACT_FIELDS

    for key, path in rule.points_to.items():
        if key not in POINTS_TO_FIELDS:
            allowed = ", ".join(POINTS_TO_FIELDS)
            return f"points_to.{key}: not a candidate field a suggestion changes (allowed: {allowed})"
        if path not in FACT_FIELDS:
            return f"points_to.{key}: {path!r} is not a fact field (see docs/rules.md for the vocabulary)"
    return None


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
        if not BASIS_PATTERN.match(text):
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


def load_rules(root: Path | None = None, problems: list[str] | None = None, probe: bool = True) -> RuleSet:
    """Load every rules/*.yaml (sorted: rule order, hence firing order, is stable).

    Every `because` template is checked and rendered against a sample fact on every load (the validated
    result is cached per user, so this costs only on a change); `probe` is accepted for older callers."""
    base = root if root is not None else data_dir("rules")
    if not base.is_dir():
        raise RuleError(f"{base}: rules directory not found")
    # policy.yaml beside the rules is the decision policy (core/policy.py), not a factor's rules; its
    # bytes still enter the digest, so a policy change is a rule-set change for caches and audits.
    from ..core.policy import POLICY_FILE

    files = sorted(p for p in base.glob("*.yaml") if p.name != POLICY_FILE)
    if not files:
        raise RuleError(f"{base}: no rule files (*.yaml)")
    digest = hashlib.sha256()
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for path in files:
        display = f"rules/{path.name}"
        try:
            data = read_data_file(path, display)
            digest.update(path.name.encode() + b"\0" + data)
            doc = load_yaml_bytes(data, display)
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
    policy = base / POLICY_FILE
    if policy.is_file():
        digest.update(POLICY_FILE.encode() + b"\0" + policy.read_bytes())
    return RuleSet(rules, digest.hexdigest()[:16])
