"""The only module that touches durable_rules.

Rules of engagement (docs/durable-rules.md, each with a test in tests/test_engine.py):
one Host per process with its dispatcher thread disabled; one ruleset per factor, registered once
per distinct rule set (C rulesets are never freed); a fresh sid per request, deleted in `finally`;
a sink rule so no fact is unhandled and every sid fires; facts validated (finite numbers, explicit
unique ids) before they are asserted; the returned state checked for a swallowed exception.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from ..core.errors import ExpertError
from . import facts, verdictstore
from .conditions import compared_fields, compared_literals, compared_strings
from .load import Rule, RuleSet
from .vocabulary import FACT_FIELDS, PER_BUDGET

SINK = "__sink__"
CAP = 4096  # hand one action call up to this many matches (durable's `cap`): fewer Python round trips
FRESH_ENV = "GPU_EXPERT_FRESH_FIRING"  # 1: assert every distinct projection, no class cache (audits, tests)
CLASS_LIMIT = 500_000  # cached classes per factor before the table is cleared (RSS stays flat)
FIRED_LIMIT = 64  # firings kept in one candidate basis (one per class of the budget seen) before they are cleared


class EngineError(ExpertError):
    pass


@functools.lru_cache(maxsize=1)
def _durable() -> Any:
    """durable_rules' engine module, imported when the engine is first asked about a class: a process whose
    classes are all known (verdictstore.py) never loads it."""
    from durable import engine

    return engine


@functools.lru_cache(maxsize=1)
def _quiet_host_class() -> type:
    class _QuietHost(_durable().Host):
        """A Host without the dispatcher thread that would otherwise race the caller."""

        def _run(self) -> None:  # noqa: D401 - overriding durable's thread start
            return None

    return _QuietHost


class Firing(NamedTuple):
    """One rule that fired for one candidate (a tuple: a sweep creates hundreds of thousands)."""

    rule_id: str
    fact_id: int


class _Compiled:
    def __init__(self, names: dict[str, str], rules: dict[str, list[Rule]], order: dict[str, int]):
        self.order = order  # rule id -> its place in the rule set: firings are reported in that order
        self.names = names  # factor -> durable ruleset name
        self.rules = rules
        # Each factor's engine only sees the fields its rules read: durable serialises every fact to
        # JSON and back for each matching action, so slim flat facts are most of the speed.
        self.keys = {f: sorted({flat_key(p) for r in rs for p in r.paths}) for f, rs in rules.items()}
        self.paths = sorted({p for rs in rules.values() for r in rs for p in r.paths})
        self.lookups = [(flat_key(p), tuple(p.split("."))) for p in self.paths]
        # Equivalence classes per factor: each numeric key is replaced by its place among the literals that
        # factor's rules compare it with (index of the interval, and whether it equals a literal); two numbers
        # the rules compare with each other add which of the two is larger, or that they are equal (a number
        # compared only with another field adds nothing else); a string tested only for equality with literals
        # counts as the literal it equals or as none of them (OTHER); other strings, booleans and None stay
        # exact. Facts of one class satisfy the same comparisons, so they get the same firings: the engine is
        # asked once per class, and the answer is kept.
        self.classes: dict[str, list[tuple[int, tuple | None, frozenset | None]]] = {}
        self.pairs: dict[str, list[tuple[int, int]]] = {}
        self.strings: dict[str, dict[int, frozenset]] = {}
        for f, rs in rules.items():
            numbers: dict[str, set] = {}
            compared: set[tuple[str, str]] = set()
            strings: dict[str, set] = {}
            exact_strings: set[str] = set()
            for r in rs:
                compared_literals(r.when, numbers)
                compared_fields(r.when, compared)
                compared_strings(r.when, strings, exact_strings)
            by_key = {flat_key(p): p for r in rs for p in r.paths}
            index = {by_key[k]: i for i, k in enumerate(self.keys[f])}
            numeric = {p for p in index if FACT_FIELDS[p] in (int, float)}
            # Only pairs of two numbers are reduced to their order (a string compared with a field stays exact).
            pairs = sorted({(index[a], index[b]) for a, b in compared if a in numeric and b in numeric})
            in_pairs = {i for pr in pairs for i in pr}
            spec = []
            for i, k in enumerate(self.keys[f]):
                path = by_key[k]
                if path in numbers and path in numeric:
                    lits = sorted({engine_number(float(v)) for v in numbers[path]})
                    spec.append((i, tuple(lits), frozenset(lits)))
                elif i not in in_pairs:
                    spec.append((i, None, None))
            self.classes[f] = spec
            self.pairs[f] = pairs
            self.strings[f] = {index[p]: frozenset(lits) for p, lits in strings.items()
                               if p not in exact_strings and FACT_FIELDS[p] is str}
        self.verdicts: dict[str, dict[tuple, tuple[str, ...]]] = {f: {} for f in rules}
        self.learnt = 0  # classes answered by durable since they were last written (verdictstore.py)
        self.registered: set[str] = set()  # factors whose ruleset durable has

    @functools.cached_property
    def _from_fact(self) -> tuple[Any, dict[str, dict]]:
        # Every factor's class in one generated call, straight from the nested fact (no flat copy of every fact,
        # only of the representatives the engine is asked about); the shared groups' items are computed once per
        # group object.
        return _all_classes_function(self)

    @property
    def class_all(self):
        """`fact -> tuple of every factor's class key`."""
        return self._from_fact[0]

    @property
    def group_tables(self) -> dict[str, dict]:
        return self._from_fact[1]

    @functools.cached_property
    def class_of_candidate(self):
        """`(cat, candidate) -> the class_all of its fact`, computing only the fields the rules read, from the
        candidate itself (rulelang/facts.py CANDIDATE_FIELDS): no fact is built for a class the engine knows."""
        return _all_classes_function(self, from_candidate=True)[0]

    @functools.cached_property
    def class_of(self) -> dict[str, Any]:
        """One generated class function per factor: the reference class_all is tested against (compiled only
        when asked for, not at start-up)."""
        return {f: _class_function(self.classes[f], self.pairs[f], self.strings[f], self.keys[f],
                                   {flat_key(p): p for r in rs for p in r.paths})
                for f, rs in self.rules.items()}


# A string's class when it equals none of the literals its factor's rules test it for: not a string, so no
# literal can be equal to it.
OTHER = ("none of the literals",)


class _NotFinite(Exception):
    pass


def _field_code(i: int, path: str, access: str, entries: dict[int, tuple], strings: dict[int, frozenset],
                in_pairs: set[int], env: dict[str, Any], prefix: str) -> tuple[list[str], str | None]:
    """One field's statements and its class item (a name, or None when it counts only through a pair); a
    number a pair compares is left in `{prefix}n{i}`."""
    lits, litset = entries.get(i, (None, None))
    K, N, L, S = (f"{prefix}{x}{i}" for x in "knLS")
    lines: list[str]
    if lits is not None:
        env[L], env[S] = lits, litset
        lines = [
            f"v = {access}",
            "vc = v.__class__",
            "if vc is float:",
            "    if not (TINY <= abs(v) <= HUGE):",  # nan and inf fail it too: _engine_float refuses them
            "        v = _engine_float(v)",
            f"    {K} = _bisect({L}, v) * 2 + (v in {S}) + 2",
            "elif vc is int:",
            "    if v > HUGE or v < -HUGE:",
            "        v = int(_copysign(HUGE, v))",
            f"    {K} = _bisect({L}, v) * 2 + (v in {S}) + 2",
            "elif v is None or vc is bool:",
            f"    {K} = v",
            "else:",
            f"    {K} = _bisect({L}, v) * 2 + (v in {S}) + 2",
        ]
    elif i in strings:
        env[S] = strings[i]
        lines = [f"v = {access}", f"{K} = v if v is None or v in {S} else OTHER"]
    elif i in entries and FACT_FIELDS[path] in (str, bool):
        lines = [f"{K} = {access}"]  # compared for equality only: the value itself is its class
    else:
        # A number kept exact, or one compared only with another field (then only the pair's order counts).
        lines = [
            f"v = {access}",
            "vc = v.__class__",
            "if vc is float:",
            "    if not (TINY <= abs(v) <= HUGE):",
            "        v = _engine_float(v)",
            "elif vc is int and (v > HUGE or v < -HUGE):",
            "    v = int(_copysign(HUGE, v))",
            f"{K} = v",
        ]
    if i in in_pairs:
        lines.append(f"{N} = v")
    return lines, (K if i in entries else None)


def _value_code(x: str, access: str, raw: bool) -> list[str]:
    """`x` = the field's value as the engine is given it (engine_number; ints clamped to HUGE; not finite:
    refused), as _field_code normalises it; a string or boolean is its own value."""
    if raw:
        return [f"{x} = {access}"]
    return [
        f"{x} = {access}",
        f"vc = {x}.__class__",
        "if vc is float:",
        f"    if not (TINY <= abs({x}) <= HUGE):",  # nan and inf fail it too: _engine_float refuses them
        f"        {x} = _engine_float({x})",
        f"elif vc is int and ({x} > HUGE or {x} < -HUGE):",
        f"    {x} = int(_copysign(HUGE, {x}))",
    ]


def _access(path: str, root: str = "fact") -> str:
    return root + "".join(f"[{p!r}]" for p in path.split("."))


def _class_code(spec: list[tuple[int, tuple | None, frozenset | None]], pairs: list[tuple[int, int]],
                strings: dict[int, frozenset], keys: list[str], by_key: dict[str, str], env: dict[str, Any],
                prefix: str = "") -> tuple[list[str], list[str]]:
    """The statements and tuple items computing one factor's class key (see _class_function)."""
    entries = {i: (lits, litset) for i, lits, litset in spec}
    in_pairs = {i for pr in pairs for i in pr}
    lines, parts = [], []
    for i, k in enumerate(keys):
        path = by_key[k]
        code, item = _field_code(i, path, _access(path), entries, strings, in_pairs, env, prefix)
        lines += code
        if item:
            parts.append(item)
    for a, b in pairs:
        parts.append(_pair_item(f"{prefix}n{a}", f"{prefix}n{b}"))
    return lines, parts


def _pair_item(na: str, nb: str) -> str:
    return f"(None if {na} is None or {nb} is None else ({na} > {nb}) - ({na} < {nb}))"


# Fact groups built once per GPU, precision (and tier), model and request and shared by their candidates
# (rulelang/facts.py): the class items read from them are computed once per group object, not per candidate.
SHARED_GROUPS = ("gpu", "precision", "model", "req")
GROUP_LIMIT = 4096  # kept group parts per group before the table is cleared


def _all_classes_function(compiled: _Compiled, from_candidate: bool = False) -> tuple[Any, dict[str, dict]]:
    """Compile `fact -> tuple of every factor's class key` (each equal to that factor's class_of), reading each
    shared group's fields once per group object (kept by identity, the object held so its id is not reused).
    `from_candidate`: `(cat, candidate) -> the same tuple`, each field computed by its fact expression
    (facts.CANDIDATE_FIELDS, the shared groups by facts.SHARED_GROUPS) instead of read from a built fact; and
    for a candidate with a `basis` (candidates.Basis: what it shares with the same configuration in requests
    that differ only in budget), the items that cannot differ between such candidates (every item but those of
    vocabulary.PER_BUDGET fields and of the request's group) are computed once per basis and kept in it, so a budget
    ladder's later requests compute only those few."""
    env = _class_env()
    if from_candidate:
        env.update(facts.code_env())

    def access(path: str) -> str:
        if not from_candidate:
            return _access(path)
        group, _, rest = path.partition(".")
        if group in facts.SHARED_GROUPS:
            return f"GD_{group}" + "".join(f"[{p!r}]" for p in rest.split("."))
        return f"({facts.field_expression(path)})"

    tables: dict[str, dict] = {g: {} for g in SHARED_GROUPS}
    group_lines: dict[str, list[str]] = {g: [] for g in SHARED_GROUPS}
    group_items: dict[str, list[str]] = {g: [] for g in SHARED_GROUPS}
    main: list[str] = []
    main_by: dict[bool, list[str]] = {True: [], False: []}  # each value's statements, by whether it is static
    results: list[list[tuple[str, bool]]] = []  # per factor: its items, each with whether it is static
    values: dict[str, str] = {}  # path -> the local holding its value
    static_value: dict[str, bool] = {}  # local -> whether its value is the same for every candidate of a basis
    for n, f in enumerate(compiled.names):  # the order fire reads the factors in
        rules = compiled.rules[f]
        prefix = f"f{n}_"
        by_key = {flat_key(p): p for r in rules for p in r.paths}
        entries = {i: (lits, litset) for i, lits, litset in compiled.classes[f]}
        pairs = compiled.pairs[f]
        in_pairs = {i for pr in pairs for i in pr}
        parts: list[tuple[str, bool]] = []
        paired: dict[int, str] = {}
        for i, k in enumerate(compiled.keys[f]):
            path = by_key[k]
            group, _, rest = path.partition(".")
            if group in SHARED_GROUPS and rest and i not in in_pairs:
                code, item = _field_code(i, path, _access(rest, "d"), entries, compiled.strings[f], in_pairs, env,
                                            prefix)
                group_lines[group] += code
                if item:
                    parts.append((f"G_{group}[{len(group_items[group])}]", group != "req"))
                    group_items[group].append(item)
            else:
                # Each field's value once for every factor that reads it (normalised as the engine gets it), then
                # this factor's class item of it.
                x = values.get(path)
                if x is None:
                    x = values[path] = f"x{len(values)}"
                    code = _value_code(x, access(path), FACT_FIELDS[path] in (str, bool))
                    main += code
                    static_value[x] = path not in PER_BUDGET
                    main_by[static_value[x]] += code
                lits, litset = entries.get(i, (None, None))
                if i in in_pairs:
                    paired[i] = x
                if lits is not None:
                    env[f"{prefix}L{i}"], env[f"{prefix}S{i}"] = lits, litset
                    parts.append((f"({x} if {x} is None or {x}.__class__ is bool else "
                                  f"_bisect({prefix}L{i}, {x}) * 2 + ({x} in {prefix}S{i}) + 2)", static_value[x]))
                elif i in compiled.strings[f]:
                    env[f"{prefix}S{i}"] = compiled.strings[f][i]
                    parts.append((f"({x} if {x} is None or {x} in {prefix}S{i} else OTHER)", static_value[x]))
                elif i in entries:
                    parts.append((x, static_value[x]))
        # Both sides of a pair are read in main.
        parts += [(_pair_item(paired[a], paired[b]), static_value[paired[a]] and static_value[paired[b]])
                  for a, b in pairs]
        results.append(parts)
    heads: dict[str, list[str]] = {}
    for g in SHARED_GROUPS:
        if not group_items[g]:
            continue
        env[f"T_{g}"] = tables[g]
        body = "".join(f"    {ln}\n" for ln in group_lines[g])
        src = f"def part_{g}(d):\n{body}    return (" + "".join(x + ", " for x in group_items[g]) + ")\n"
        exec(compile(src, f"<rule classes: {g}>", "exec"), env)  # noqa: S102 - source built from vocabulary paths
        if from_candidate:
            # Kept by the object the group is built from (the GPU, the precision and tier, the model, the
            # request), with the group dict, which is built only when that object is new here.
            src, extra = facts.GROUP_SOURCES[g]
            key = f"(id(o), {extra})" if extra else "id(o)"
            heads[g] = [
                f"o = {src}",
                f"h = T_{g}.get({key})",
                "if h is None or h[0] is not o:",
                f"    if len(T_{g}) >= GROUP_LIMIT:",
                f"        T_{g}.clear()",
                f"    d = {facts.SHARED_GROUPS[g]}",
                f"    h = T_{g}[{key}] = (o, {'_intern_req(part_req(d))' if g == 'req' else f'part_{g}(d)'}, d)",
                f"G_{g} = h[1]",
                f"h_{g} = h",
            ]
            continue
        heads[g] = [
            f"d = fact[{g!r}]",
            f"h = T_{g}.get(id(d))",
            "if h is None or h[0] is not d:",
            f"    if len(T_{g}) >= GROUP_LIMIT:",
            f"        T_{g}.clear()",
            f"    h = T_{g}[id(d)] = (d, part_{g}(d))",
            f"G_{g} = h[1]",
        ]
    env["GROUP_LIMIT"] = GROUP_LIMIT

    def _intern_req(items: tuple) -> tuple:
        # One object per distinct content of the request group's items (requests of a budget ladder whose budgets
        # fall in one class share it): the engine's kept firings are keyed by its identity.
        interned = env["REQ_GROUPS"]
        got = interned.get(items)
        if got is None:
            if len(interned) >= GROUP_LIMIT:
                interned.clear()
            got = interned[items] = items
        return got

    env["_intern_req"] = _intern_req

    def tuple_of(items: list[str]) -> str:
        return "(" + "".join(x + ", " for x in items) + ")"

    def result_of(item: Any) -> str:
        return tuple_of([tuple_of([item(x, st) for x, st in parts]) for parts in results])

    if not from_candidate:
        head = [ln for g in SHARED_GROUPS for ln in heads.get(g, [])]
        return _compile_class(env, head + main, result_of(lambda x, st: x), "fact"), tables

    def candidate_head(lines: list[str], groups: list[str]) -> list[str]:
        # The names the field expressions read (c.request, c.estimate ...) and the shared groups' parts, each once;
        # a group field compared with another field is read from the group dict itself.
        read = [g for g in SHARED_GROUPS if any(f"GD_{g}" in ln for ln in lines)]
        head = [ln for g in SHARED_GROUPS if g in groups or g in read for ln in heads.get(g, [])]
        head += [f"GD_{g} = h_{g}[2]" if group_items[g] else f"GD_{g} = {facts.SHARED_GROUPS[g]}" for g in read]
        return facts.let_lines(lines) + head

    used = [g for g in SHARED_GROUPS if group_items[g]]
    _compile_class(env, candidate_head(main, used) + main, result_of(lambda x, st: x), "cat, c", "class_full")
    # For a candidate with a basis: class_parts gives (the basis's kept entry, the request group's items, the
    # other per-budget items), and assemble builds the class tuple from them, so that the engine can key what a
    # class fires by those parts (RuleEngine.fire_candidates) without building or hashing the whole tuple.
    # Compiled when a candidate with a basis first comes (a one-off `expert advise` has none: no compile for it).
    static_items = [x for parts in results for x, st in parts if st]
    env["KEY"], env["REQ_GROUPS"] = object(), {}

    def fast() -> tuple[Any, Any]:
        if "assemble" not in env:
            static_groups = [g for g in used if g != "req"]
            _compile_class(env, candidate_head(main_by[True], static_groups) + main_by[True],
                           tuple_of(static_items), "cat, c", "class_static")
            at = iter(range(len(static_items)))
            dynamic: list[str] = []

            def assembled(x: str, st: bool) -> str:
                if st:
                    return f"S[{next(at)}]"
                if x.startswith("G_req["):
                    return x
                dynamic.append(x)
                return f"D[{len(dynamic) - 1}]"

            assemble_src = result_of(assembled)
            # Kept in the basis under this function's own key (held in the entry's place, so another compiled rule
            # set's key is never mistaken for it).
            lines = [
                "kept = b.kept",
                "hs = kept.get(KEY)",
                "if hs is None:",
                "    hs = kept[KEY] = (class_static(cat, c), {})",
                *candidate_head(main_by[False], ["req"] if "req" in used else []),
                *main_by[False],
            ]
            _compile_class(env, lines, f"hs, {'G_req' if 'req' in used else 'None'}, {tuple_of(dynamic)}",
                           "cat, c, b", "class_parts")
            _compile_class(env, [], assemble_src, "S, G_req, D", "assemble")
        return env["class_parts"], env["assemble"]

    env["_fast"] = fast
    fn = _compile_class(env, ["b = c.basis", "if b is None:", "    return class_full(cat, c)",
                              "class_parts, assemble = _fast()", "h, G, D = class_parts(cat, c, b)"],
                        "assemble(h[0], G, D)", "cat, c")
    fn.fast = fast
    return fn, tables


def _engine_float(v: float) -> float:
    """engine_number of a float outside [TINY, HUGE] in magnitude, or of nan or an infinity, which are refused:
    the class functions test the common case inline (one comparison chain) and call this for the rest."""
    if v - v != 0.0:
        raise _NotFinite
    return engine_number(v)


def _class_env() -> dict[str, Any]:
    return {"_NotFinite": _NotFinite, "_bisect": bisect.bisect_left, "OTHER": OTHER,
            "_engine_float": _engine_float, "_copysign": math.copysign, "TINY": TINY, "HUGE": HUGE}


def _compile_class(env: dict[str, Any], lines: list[str], result: str, args: str = "fact",
                   name: str = "class_of"):
    body = "".join(f"    {ln}\n" for ln in lines)
    src = f"def {name}({args}):\n" + body + f"    return {result}\n"
    exec(compile(src, f"<rule classes: {name}>", "exec"), env)  # noqa: S102 - source built from vocabulary paths
    return env[name]


def _class_function(spec: list[tuple[int, tuple | None, frozenset | None]], pairs: list[tuple[int, int]],
                    strings: dict[int, frozenset], keys: list[str], by_key: dict[str, str]):
    """Compile `fact -> class key` for one factor (the same key _class_key gives for the flat projection).

    Each number is what the engine would be given (engine_number; ints clamped to HUGE; not finite: refused),
    then, where the factor's rules compare it with literals, its interval among them, and for each pair of
    numbers compared with each other, their order. Written out inline for each field: the function runs once
    per candidate and factor, hundreds of thousands of times in a sweep, and the calls were most of its time."""
    env = _class_env()
    lines, parts = _class_code(spec, pairs, strings, keys, by_key, env)
    return _compile_class(env, lines, "(" + "".join(p + ", " for p in parts) + ")")


def _class_key(proj: tuple, spec: list[tuple[int, tuple | None, frozenset | None]],
               pairs: list[tuple[int, int]] = (), strings: dict[int, frozenset] | None = None) -> tuple:
    """The class of a flat projection (the reference the generated class functions are tested against)."""
    out: list[Any] = []
    for i, lits, litset in spec:
        v = proj[i]
        if strings and i in strings:
            out.append(v if v is None or v in strings[i] else OTHER)
        elif lits is None or v is None or v.__class__ is bool:
            out.append(v)
        else:
            out.append(bisect.bisect_left(lits, v) * 2 + (v in litset) + 2)
    for a, b in pairs:
        x, y = proj[a], proj[b]
        out.append(None if x is None or y is None else (x > y) - (x < y))
    return tuple(out)


def fresh_firing() -> bool:
    return os.environ.get(FRESH_ENV, "").strip() not in ("", "0")


@contextmanager
def forced_fresh() -> Iterator[None]:
    """Fire every fact afresh inside the block (audits: a reviewer's comparison trusts no kept verdict)."""
    old = os.environ.get(FRESH_ENV)
    os.environ[FRESH_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FRESH_ENV, None)
        else:
            os.environ[FRESH_ENV] = old


# durable_rules' C JSON parser mis-reads numbers written with an exponent and no decimal point
# ("3e-07", "1e+16": facts silently dropped, or a segmentation fault; measured here with 2.0.28).
# Python writes floats with an exponent below 1e-4 and from 1e16 up, so values are clamped into
# [1e-4, 1e15] in magnitude (zero stays zero). Rule thresholds are kept in that range at load time
# (rules.NUMBER_RANGE), so clamping never changes a comparison.
TINY, HUGE = 1e-4, 1e15


def engine_number(v: float) -> float:
    if v == 0.0:
        return 0.0
    mag = abs(v)
    if mag < TINY:
        return math.copysign(TINY, v)
    if mag > HUGE:
        return math.copysign(HUGE, v)
    return v


def _flatten(fact: dict[str, Any], lookups: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": fact["id"], "kind": fact["kind"]}
    for key, parts in lookups:
        v: Any = fact
        for p in parts:
            v = v[p]
        if v.__class__ is float:
            if not math.isfinite(v):
                raise EngineError(f"candidate fact {fact['id']}: {'.'.join(parts)} is not finite ({v})")
            v = engine_number(v)
        elif v.__class__ is int and abs(v) > HUGE:
            v = int(math.copysign(HUGE, v))
        out[key] = v
    return out


# The engine sees flat facts with short keys (`gpu.fp8` -> `f17`): durable serialises every fact to
# JSON for the C matcher and back for each action, so key length is time.
_ALIAS = {path: f"f{i}" for i, path in enumerate(FACT_FIELDS)}


def flat_key(path: str) -> str:
    return _ALIAS[path]


class RuleEngine:
    """durable_rules behind one object: its Host, the rulesets registered on it and the firing state
    of the request being asserted. One per process (`default_engine()`): C rulesets are never freed."""

    def __init__(self) -> None:
        self._host: Any = None
        self._compiled: dict[str, _Compiled] = {}
        self._sids = itertools.count(1)
        # What the actions of the request being asserted append to.
        self._collect: list[Firing] = []
        self._sink_hits: list[int] = []
        self._persisting = False  # the exit hook writing learnt classes back is registered

    def _action(self, rule_id: str):
        collect = self._collect

        def run(c) -> None:
            matched = c.m if isinstance(c.m, list) else [c.m]
            for m in matched:
                collect.append(Firing(rule_id, int(m["id"])))

        return run

    def _sink_action(self):
        hits = self._sink_hits

        def run(c) -> None:
            hits.append(1)

        return run

    def _definition(self, rules: list[Rule]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for pri, rule in enumerate(rules, start=1):
            d[rule.id] = {"all": [{"m": rule.compiled(flat_key)}], "pri": pri, "cap": CAP,
                          "run": self._action(rule.id)}
        # Matches every candidate (not durable's own state fact, which has no `kind`), fires last.
        d[SINK] = {"all": [{"m": {"$ex": {"kind": 1}}}], "pri": 60000, "cap": CAP, "run": self._sink_action()}
        return d

    @property
    def host(self) -> Any:
        """durable's Host, made (and durable imported) when first needed."""
        if self._host is None:
            self._host = _quiet_host_class()()
        return self._host

    def compile(self, ruleset: RuleSet) -> _Compiled:
        """One durable ruleset per factor, once per distinct rule set; each is registered with durable when the
        engine first asserts facts into it (_register)."""
        if ruleset.digest in self._compiled:
            return self._compiled[ruleset.digest]
        per_factor = ruleset.by_factor()
        names = {factor: f"{factor}-{ruleset.digest}" for factor in per_factor}
        compiled = _Compiled(names, per_factor, {r.id: i for i, r in enumerate(ruleset.rules)})
        self._compiled[ruleset.digest] = compiled
        # What earlier processes learnt of these rules (verdictstore.py): a new process asks durable only about
        # classes new to it; what it learns is written back when it exits.
        stored = verdictstore.load(ruleset.digest, {f: {r.id for r in rs} for f, rs in per_factor.items()})
        for factor, known in stored.items():
            compiled.verdicts[factor].update(known)
        if not self._persisting:
            self._persisting = True
            atexit.register(self._persist)
        return compiled

    def _register(self, compiled: _Compiled, factor: str) -> None:
        try:
            # register_rulesets deletes `run` from what it is given: the definition is built fresh here,
            # never cached, so nothing of ours is consumed.
            self.host.register_rulesets({compiled.names[factor]: self._definition(compiled.rules[factor])})
        except Exception as exc:  # noqa: BLE001 - durable raises bare Exceptions
            raise EngineError(f"durable_rules refused the {factor} rules: {exc}") from None
        compiled.registered.add(factor)

    def _persist(self) -> None:
        """Write back each rule set's classes if this process learnt any (at exit: once, not per request)."""
        for digest, compiled in list(self._compiled.items()):
            if compiled.learnt:
                compiled.learnt = 0
                verdictstore.save(digest, compiled.verdicts)

    def fire(self, ruleset: RuleSet, facts: list[dict[str, Any]], fresh: bool | None = None) -> list[Firing]:
        """Assert the candidate facts into each factor's ruleset; return the firings, in a stable order.

        By default the engine is asked once per equivalence class of facts (see _Compiled.classes) and the
        firings of a class are kept for the process, keyed by the rule set's digest: a sweep asks durable
        only about classes it has not seen. `fresh` (or GPU_EXPERT_FRESH_FIRING=1) asserts every distinct
        projection and keeps nothing: the path audits use and the class path is tested against."""
        if not facts:
            return []
        ids = [f["id"] for f in facts]
        compiled, fresh = self._start(ruleset, ids, fresh)
        if fresh:
            fired = self._fresh(compiled, facts)
        else:
            classes = self._classes(compiled, facts, compiled.class_all, _itself)
            fired = self._by_class(compiled, ids, facts, classes, _itself)
        # Stable order: by fact id, then by the rules' order in the rule set.
        return [Firing(rid, cid) for cid in sorted(fired) for rid in fired[cid]]

    def fire_candidates(self, ruleset: RuleSet, cat: Any, candidates: list[Any],
                        fresh: bool | None = None) -> dict[int, tuple[str, ...]]:
        """Each candidate's fired rule ids, in the rule set's order (absent: none fired), as `fire` finds them
        for the candidates' facts; on the class path no fact is built except for a class the engine is asked
        about (its representative's), the classes computed from the candidates (_Compiled.class_of_candidate)."""
        if not candidates:
            return {}
        ids = [c.id for c in candidates]
        compiled, fresh = self._start(ruleset, ids, fresh)

        def fact_of(c: Any) -> dict[str, Any]:
            return facts.candidate_fact(cat, c)

        if fresh:
            return self._fresh(compiled, [fact_of(c) for c in candidates])
        classify = compiled.class_of_candidate
        parts = assemble = None
        # A candidate with a basis (a budget ladder's configuration) whose other class parts (the request group's
        # items, the per-budget ones) were seen with that basis gets the rule ids they fired then, kept in the
        # basis; the others go through their classes.
        out: dict[int, tuple[str, ...]] = {}
        todo: list[Any] = []
        keys: list[tuple | None] = []
        classes: list[tuple] = []
        try:
            for c in candidates:
                b = c.basis
                if b is None:
                    classes.append(classify(cat, c))
                    keys.append(None)
                else:
                    if parts is None:
                        parts, assemble = classify.fast()
                    h, g, d = parts(cat, c, b)
                    k = (id(g), d)
                    hit = h[1].get(k)
                    if hit is not None and hit[0] is g:
                        if hit[1]:
                            out[c.id] = hit[1]
                        continue
                    classes.append(assemble(h[0], g, d))
                    keys.append((h[1], k, g))
                todo.append(c)
        except _NotFinite:
            self._classes(compiled, candidates, lambda c: classify(cat, c), fact_of)  # raises, naming the field
            raise
        fired = self._by_class(compiled, [c.id for c in todo], todo, classes, fact_of)
        for c, key in zip(todo, keys, strict=True):
            if key is not None:
                kept, k, g = key
                if len(kept) >= FIRED_LIMIT:
                    kept.clear()
                kept[k] = (g, fired.get(c.id, ()))
        out.update(fired)
        return out

    def _start(self, ruleset: RuleSet, ids: list[int], fresh: bool | None) -> tuple[_Compiled, bool]:
        if len(set(ids)) != len(ids):
            raise EngineError("candidate facts need unique ids")
        return self.compile(ruleset), fresh_firing() if fresh is None else fresh

    @staticmethod
    def _classes(compiled: _Compiled, items: list[Any], classify: Any, fact_of: Any) -> list[tuple]:
        """Every item's class tuple; a number that is not finite is refused by name (its fact flattened)."""
        try:
            return [classify(x) for x in items]
        except _NotFinite:
            for x in items:
                _flatten(fact_of(x), compiled.lookups)  # raises, naming the fact and the field
            raise

    def _fresh(self, compiled: _Compiled, fact_list: list[dict[str, Any]]) -> dict[int, tuple[str, ...]]:
        order = compiled.order
        per_fact = self._per_factor(compiled, fact_list)
        return {cid: tuple(sorted(rids, key=order.__getitem__)) for cid, rids in per_fact.items()}

    def _by_class(self, compiled: _Compiled, ids: list[int], items: list[Any], classes: list[tuple],
                  fact_of: Any) -> dict[int, tuple[str, ...]]:
        """Each item's fired rule ids in rule-set order, asking each factor's ruleset once per class it has not
        seen (its answers kept for the process, per rule set). Items whose classes agree in every factor get the
        same firings: they are grouped first, and each such combination is looked at once. `fact_of` gives the
        nested fact of an item."""
        combos: dict[tuple, list[int]] = {}
        rep: list[Any] = []  # per combination, in combos' order: the item whose fact a factor is asked about
        for cid, item, cl in zip(ids, items, classes, strict=True):
            members = combos.get(cl)
            if members is None:
                combos[cl] = [cid]
                rep.append(item)
            else:
                members.append(cid)
        flat: dict[int, dict[str, Any]] = {}  # by id(item): a representative asked about by several factors

        def projection(item: Any, keys: list[str]) -> tuple:
            fl = flat.get(id(item))
            if fl is None:
                fl = flat[id(item)] = _flatten(fact_of(item), compiled.lookups)
            return tuple(fl[k] for k in keys)

        cls = list(combos)
        # Per factor, each combination's answer (its fired rule ids), by position: a class tuple is hashed once
        # per factor (tuples do not keep their hash, and most combinations of a request are distinct, each a
        # candidate), not again to read the answer back.
        answers: list[list[tuple[str, ...]]] = []
        for n, (factor, name) in enumerate(compiled.names.items()):
            known = compiled.verdicts[factor]
            mine: dict[tuple, tuple[str, ...] | None] = {}
            ask: dict[tuple, Any] = {}
            got: list[Any] = []
            pending: list[int] = []  # positions whose class this factor's ruleset is asked about below
            for i, cl in enumerate(cls):
                ck = cl[n]
                hit = mine.get(ck, _UNSEEN)
                if hit is _UNSEEN:
                    hit = mine[ck] = known.get(ck)
                    if hit is None:
                        ask[ck] = rep[i]
                if hit is None:
                    pending.append(i)
                got.append(hit)
            if ask:
                keys = compiled.keys[factor]
                new = dict(zip(ask, self._assert(compiled, factor, name, keys,
                                                 [projection(it, keys) for it in ask.values()]), strict=True))
                if len(known) + len(new) > CLASS_LIMIT:
                    known.clear()
                known.update(new)
                compiled.learnt += len(new)
                for i in pending:
                    got[i] = new[cls[i][n]]
            answers.append(got)
        out: dict[int, tuple[str, ...]] = {}
        if not answers:
            return out
        order = compiled.order
        # The same answers in every factor fire the same rules: their union is sorted once per request.
        merged: dict[tuple, tuple[str, ...]] = {}
        for members, per_factor in zip(combos.values(), zip(*answers, strict=True), strict=True):
            fired = merged.get(per_factor)
            if fired is None:
                fired = merged[per_factor] = tuple(sorted([r for a in per_factor for r in a], key=order.__getitem__))
            if fired:
                for cid in members:
                    out[cid] = fired
        return out

    def _per_factor(self, compiled: _Compiled, facts: list[dict[str, Any]]) -> dict[int, set[str]]:
        """Each fact's fired rule ids, asking each factor's ruleset once per distinct projection of its keys (the
        exact projection is its own class), keeping nothing: the reference the class path is tested against."""
        flat = [_flatten(f, compiled.lookups) for f in facts]
        per_fact: dict[int, set[str]] = {}
        for factor, name in compiled.names.items():
            keys = compiled.keys[factor]
            groups: dict[tuple, list[int]] = {}
            for f in flat:
                groups.setdefault(tuple(f[k] for k in keys), []).append(f["id"])
            if not groups:
                continue
            ask = list(groups)
            answers = self._assert(compiled, factor, name, keys, ask)
            for proj, rids in zip(ask, answers, strict=True):
                if rids:
                    for cid in groups[proj]:
                        per_fact.setdefault(cid, set()).update(rids)
        return per_fact

    def _assert(self, compiled: _Compiled, factor: str, name: str, keys: list[str],
                projections: list[tuple]) -> list[tuple[str, ...]]:
        """Assert one fact per projection in a fresh session; the rule ids that fired for each."""
        if factor not in compiled.registered:
            self._register(compiled, factor)
        sid = str(next(self._sids))
        batch = [{"sid": sid, "id": i, "kind": "candidate", **dict(zip(keys, proj, strict=True))}
                 for i, proj in enumerate(projections, start=1)]
        fired: list[list[str]] = [[] for _ in projections]
        self._collect.clear()
        self._sink_hits.clear()
        try:
            state = self.host.assert_facts(name, batch)
            if isinstance(state, dict) and state.get("exception"):
                raise EngineError(f"a {factor} rule action failed: {state['exception']}")
            if not self._sink_hits:
                raise EngineError(f"the {factor} ruleset did not see the candidate facts")
            for f in self._collect:
                fired[f.fact_id - 1].append(f.rule_id)
        except _durable().MessageNotHandledException:
            raise EngineError(f"the {factor} ruleset left facts unhandled") from None
        finally:
            self._collect.clear()
            self.host.delete_state(name, sid)
        return [tuple(dict.fromkeys(r)) for r in fired]


_UNSEEN = object()  # a class a factor has not met in this call (None: met, its answer not known)


def _itself(fact: dict[str, Any]) -> dict[str, Any]:
    return fact


_DEFAULT: RuleEngine | None = None


def default_engine() -> RuleEngine:
    """The process's engine (durable's Host and its registered rulesets live for the process)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RuleEngine()
    return _DEFAULT


def fire(ruleset: RuleSet, facts: list[dict[str, Any]], fresh: bool | None = None) -> list[Firing]:
    return default_engine().fire(ruleset, facts, fresh)


def compile_ruleset(ruleset: RuleSet) -> _Compiled:
    return default_engine().compile(ruleset)
