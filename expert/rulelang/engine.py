"""The only module that touches durable_rules.

Rules of engagement (docs/durable-rules.md, each with a test in tests/test_engine.py):
one Host per process with its dispatcher thread disabled; one ruleset per factor, registered once
per distinct rule set (C rulesets are never freed); a fresh sid per request, deleted in `finally`;
a sink rule so no fact is unhandled and every sid fires; facts validated (finite numbers, explicit
unique ids) before they are asserted; the returned state checked for a swallowed exception.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from durable import engine as _durable

from ..core.errors import ExpertError
from .load import Rule, RuleSet
from .vocabulary import FACT_FIELDS

SINK = "__sink__"
CAP = 4096  # hand one action call up to this many matches (durable's `cap`): fewer Python round trips


class EngineError(ExpertError):
    pass


class _QuietHost(_durable.Host):
    """A Host without the dispatcher thread that would otherwise race the caller."""

    def _run(self) -> None:  # noqa: D401 - overriding durable's thread start
        return None


@dataclass(frozen=True)
class Firing:
    rule_id: str
    fact_id: int


class _Compiled:
    def __init__(self, host: _QuietHost, names: dict[str, str], rules: dict[str, list[Rule]]):
        self.host = host
        self.names = names  # factor -> durable ruleset name
        self.rules = rules
        # Each factor's engine only sees the fields its rules read: durable serialises every fact to
        # JSON and back for each matching action, so slim flat facts are most of the speed.
        self.keys = {f: sorted({flat_key(p) for r in rs for p in r.paths}) for f, rs in rules.items()}
        self.paths = sorted({p for rs in rules.values() for r in rs for p in r.paths})
        self.lookups = [(flat_key(p), tuple(p.split("."))) for p in self.paths]


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
        self.host = _QuietHost()
        self._compiled: dict[str, _Compiled] = {}
        self._sids = itertools.count(1)
        # What the actions of the request being asserted append to.
        self._collect: list[Firing] = []
        self._sink_hits: list[int] = []

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

    def compile(self, ruleset: RuleSet) -> _Compiled:
        """Register one durable ruleset per factor, once per distinct rule set."""
        if ruleset.digest in self._compiled:
            return self._compiled[ruleset.digest]
        per_factor = ruleset.by_factor()
        names: dict[str, str] = {}
        for factor, rules in per_factor.items():
            name = f"{factor}-{ruleset.digest}"
            try:
                # register_rulesets deletes `run` from what it is given: the definition is built fresh here,
                # never cached, so nothing of ours is consumed.
                self.host.register_rulesets({name: self._definition(rules)})
            except Exception as exc:  # noqa: BLE001 - durable raises bare Exceptions
                raise EngineError(f"durable_rules refused the {factor} rules: {exc}") from None
            names[factor] = name
        compiled = _Compiled(self.host, names, per_factor)
        self._compiled[ruleset.digest] = compiled
        return compiled

    def fire(self, ruleset: RuleSet, facts: list[dict[str, Any]]) -> list[Firing]:
        """Assert every candidate fact into each factor's ruleset; return the firings, in a stable order."""
        if not facts:
            return []
        ids = [f["id"] for f in facts]
        if len(set(ids)) != len(ids):
            raise EngineError("candidate facts need unique ids")
        compiled = self.compile(ruleset)
        flat = [_flatten(f, compiled.lookups) for f in facts]
        out: list[Firing] = []
        for factor, name in compiled.names.items():
            sid = str(next(self._sids))
            keys = compiled.keys[factor]
            # A factor's rules read only its keys, so candidates with equal projections get equal verdicts:
            # assert each distinct projection once and hand its firings to every candidate sharing it.
            groups: dict[tuple, list[int]] = {}
            for f in flat:
                groups.setdefault(tuple(f[k] for k in keys), []).append(f["id"])
            batch = [{"sid": sid, "id": i, "kind": "candidate", **dict(zip(keys, proj, strict=True))}
                     for i, proj in enumerate(groups, start=1)]
            members = list(groups.values())
            self._collect.clear()
            self._sink_hits.clear()
            try:
                state = compiled.host.assert_facts(name, batch)
                if isinstance(state, dict) and state.get("exception"):
                    raise EngineError(f"a {factor} rule action failed: {state['exception']}")
                if not self._sink_hits:
                    raise EngineError(f"the {factor} ruleset did not see the candidate facts")
                out.extend(Firing(f.rule_id, cid) for f in self._collect for cid in members[f.fact_id - 1])
            except _durable.MessageNotHandledException:
                raise EngineError(f"the {factor} ruleset left facts unhandled") from None
            finally:
                self._collect.clear()
                compiled.host.delete_state(name, sid)
        order = {r.id: i for i, r in enumerate(ruleset.rules)}
        return sorted(set(out), key=lambda f: (f.fact_id, order.get(f.rule_id, 0)))


_DEFAULT: RuleEngine | None = None


def default_engine() -> RuleEngine:
    """The process's engine (durable's Host and its registered rulesets live for the process)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RuleEngine()
    return _DEFAULT


def fire(ruleset: RuleSet, facts: list[dict[str, Any]]) -> list[Firing]:
    return default_engine().fire(ruleset, facts)


def compile_ruleset(ruleset: RuleSet) -> _Compiled:
    return default_engine().compile(ruleset)
