"""Per-rule examples: the spec a reviewer reads next to the rule (semgrep-style `ruleid:` / `ok:`).

    examples:
      fires:
        - {request: {model: 13b, budget: 20000}, candidate: {gpu: rtx-4090, count: 1, precision: fp8}}
      does_not_fire:
        - {request: {model: 13b, budget: 20000, deployment: workstation},
           candidate: {gpu: rtx-4090, count: 1, precision: fp8}}

Each example builds the request, estimates only the named candidate's GPU at its precision, runs the
engine and checks whether the rule fired on that exact candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..candidates import build_candidates
from ..catalog import Catalog
from ..core.errors import RuleError
from ..request import build_request
from ..rulelang import Rule, RuleSet
from ..rulelang.engine import fire
from ..rulelang.facts import candidate_fact


@dataclass
class Example:
    rule: Rule
    expect_fire: bool
    index: int
    request: dict[str, Any]
    candidate: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.rule.id}::{'fires' if self.expect_fire else 'does-not-fire'}-{self.index}"


def examples(rules: RuleSet) -> list[Example]:
    out = []
    for r in rules.rules:
        for key, expect in (("fires", True), ("does_not_fire", False)):
            for i, ex in enumerate(r.examples.get(key, []) or []):
                if not isinstance(ex, dict) or set(ex) != {"request", "candidate"}:
                    raise RuleError(f"{r.file}:{r.line}: rule {r.id!r}: examples.{key}[{i}]: "
                                    "expected {request: {...}, candidate: {gpu, count, precision}}")
                out.append(Example(r, expect, i, dict(ex["request"]), dict(ex["candidate"])))
    return out


def fired_on(cat: Catalog, rules: RuleSet, ex: Example) -> bool:
    """Did the example's rule fire on the example's candidate? Raises if the candidate does not exist."""
    c = ex.candidate
    kw = {**ex.request, "precision": c["precision"]}
    req = build_request(cat, **kw)
    if c["gpu"] not in cat.gpus:
        raise RuleError(f"{ex.name}: unknown GPU {c['gpu']!r}")
    cands = build_candidates(cat, req, [cat.gpus[c["gpu"]]])
    match = [x for x in cands if x.count == c["count"] and x.precision.id == c["precision"]]
    if not match:
        counts = sorted({x.count for x in cands})
        raise RuleError(f"{ex.name}: no candidate {c} (counts weighed for this GPU and workload: {counts})")
    target = match[0].id
    firings = fire(rules, [candidate_fact(cat, x) for x in cands])
    return any(f.rule_id == ex.rule.id and f.fact_id == target for f in firings)
