"""Stage 7a. Ranking: verdicts + the workload's objective -> pick, alternatives, rejections, with the score explained.

score = objective / best objective x product over fired prefer (1 + w) and penalize (1 - w) weights,
so each factor's share of the ranking is visible (`factors` below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..candidates import Candidate
from ..core.workloads import WORKLOADS
from ..rulelang import Rule, RuleSet, get_path
from ..rulelang.conditions import evaluate
from ..rulelang.engine import Firing

OBJECTIVES = {
    "inference": ("serving capacity (decode tokens/s at the largest batch that fits) per unit of total cost "
                  "of ownership",
                  lambda c: _per_tco(c, "capacity_tps")),
    "dev": ("usable memory per unit of price (counted up to twice what the model needs)",
            lambda c: _dev_value(c)),
    # Fine-tuning runs are short: what matters is the cost of finishing them (time limits are rules).
    "lora": ("training tokens/s per unit of total cost of ownership", lambda c: _per_tco(c, "train_tps")),
    "qlora": ("training tokens/s per unit of total cost of ownership", lambda c: _per_tco(c, "train_tps")),
    "finetune": ("training tokens/s per unit of total cost of ownership", lambda c: _per_tco(c, "train_tps")),
    "training": ("training tokens/s (time to train the requested tokens)", lambda c: c.train_tps),
}


def _per_tco(c: Candidate, rate: str) -> float:
    value = c.capacity.tokens_per_s if rate == "capacity_tps" else c.train_tps
    return value / c.tco if c.tco else 0.0


def _dev_value(c: Candidate) -> float:
    """Memory an experimenter can use, per unit of price. Room beyond twice the model's footprint
    (longer contexts, a second copy, larger batches) is not worth paying for on a development box."""
    mem = c.estimate.memory_gib
    need = mem["total"]
    usable = min(mem["available_per_gpu"] * c.count, 2 * need)
    return usable / c.capex if c.capex else 0.0


@dataclass
class Verdict:
    rule: Rule
    candidate: Candidate
    fact: dict[str, Any]  # the engine's fact of the candidate: what the rule read and its text renders

    @property
    def action(self) -> str:
        return self.rule.action.kind

    @property
    def text(self) -> str:
        return self.rule.render(self.fact)

    def values(self) -> dict[str, Any]:
        """The fact values this rule's condition read: what a reviewer checks the verdict against."""
        return {p: _round(get_path(self.fact, p)) for p in self.rule.paths}

    def to_dict(self) -> dict[str, Any]:
        a = self.rule.action
        return {
            "rule": self.rule.id, "factor": self.rule.factor, "action": a.kind,
            **({"weight": a.weight} if a.kind in ("prefer", "penalize") else {}),
            "because": self.text, "values": self.values(), "sources": list(self.rule.sources),
        }


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


@dataclass
class Ranked:
    candidate: Candidate
    fact: dict[str, Any]
    verdicts: list[Verdict]
    objective: float = 0.0
    score: float = 0.0
    raw_score: float = 0.0  # objective x rule weights, not normalised: comparable across requests
    factors: dict[str, float] = field(default_factory=dict)

    rejected_by: list[Verdict] = field(default_factory=list)

    def add(self, v: Verdict) -> None:
        self.verdicts.append(v)
        if v.rule.action.kind == "reject":
            self.rejected_by.append(v)

    @property
    def feasible(self) -> bool:
        return not self.rejected_by

    @property
    def budget_only(self) -> bool:
        """Rejected, but only for money: it would work with a larger budget."""
        rej = self.rejected_by
        return bool(rej) and all(v.rule.scope == "budget" for v in rej)


@dataclass
class Outcome:
    objective_name: str
    ranked: list[Ranked]  # feasible, best first
    rejected: list[Ranked]
    pick: Ranked | None
    alternatives: list[tuple[str, Ranked]]
    cheapest_over_budget: Ranked | None
    fired_rules: dict[str, int]


def rank(ruleset: RuleSet, candidates: list[Candidate], facts: list[dict[str, Any]], firings: list[Firing],
         workload: str) -> Outcome:
    by_id = {c.id: Ranked(c, f, []) for c, f in zip(candidates, facts, strict=True)}
    fired: dict[str, int] = {}
    for f in firings:
        rule = ruleset.by_id[f.rule_id]
        r = by_id[f.fact_id]
        r.add(Verdict(rule, r.candidate, r.fact))
        fired[f.rule_id] = fired.get(f.rule_id, 0) + 1
    name, objective = OBJECTIVES[workload]
    everything = list(by_id.values())
    for r in everything:
        r.objective = objective(r.candidate)
    feasible = [r for r in everything if r.feasible]
    best = max((r.objective for r in feasible), default=0.0) or max((r.objective for r in everything), default=0.0)
    for r in everything:
        base = r.objective / best if best > 0 else 0.0
        factors: dict[str, float] = {}
        for v in r.verdicts:
            a = v.rule.action
            if a.kind == "prefer":
                factors[v.rule.factor] = factors.get(v.rule.factor, 1.0) * (1 + a.weight)
            elif a.kind == "penalize":
                factors[v.rule.factor] = factors.get(v.rule.factor, 1.0) * (1 - a.weight)
        r.factors = {"objective": base, **{k: round(val, 4) for k, val in sorted(factors.items())}}
        r.score = 100 * base * math.prod(factors.values())
        r.raw_score = r.objective * math.prod(factors.values())

    def key(r: Ranked):
        c = r.candidate
        # Ties (identical scores) break on price, then count, then ids: output never depends on fact order.
        return (-round(r.score, 9), c.capex, c.count, c.gpu.id, c.precision.id)

    ranked = sorted(feasible, key=key)
    rejected = sorted((r for r in everything if not r.feasible), key=key)
    pick = ranked[0] if ranked else None
    alternatives = _alternatives(ranked, pick, workload)
    over = [r for r in rejected if r.budget_only]
    cheapest_over = min(over, key=lambda r: (r.candidate.capex, -r.score)) if (not ranked and over) else None
    return Outcome(name, ranked, rejected, pick, alternatives, cheapest_over, dict(sorted(fired.items())))


def _alternatives(ranked: list[Ranked], pick: Ranked | None, workload: str) -> list[tuple[str, Ranked]]:
    """Two or three meaningful alternatives: cheapest that works, fastest within budget, best value."""
    if not pick:
        return []
    out: list[tuple[str, Ranked]] = []
    seen = {(pick.candidate.gpu.id, pick.candidate.count)}

    def add(label: str, r: Ranked | None) -> None:
        if r is None:
            return
        k = (r.candidate.gpu.id, r.candidate.count)
        if k not in seen:
            seen.add(k)
            out.append((label, r))

    trains = WORKLOADS[workload].trains
    speed = (lambda r: r.candidate.train_tps) if trains else (lambda r: r.candidate.decode_tps)
    add("cheapest that works", min(ranked, key=lambda r: (r.candidate.capex, -r.score)))
    add("fastest within budget", max(ranked, key=lambda r: (speed(r), r.score)))
    add("runner-up", next((r for r in ranked if (r.candidate.gpu.id, r.candidate.count) not in seen), None))
    return out[:3]


def why_not(ruleset: RuleSet, ranked: list[Ranked], gpu_id: str) -> list[dict[str, Any]]:
    """For each candidate on one GPU: which rules rejected or penalised it, condition by condition."""
    out = []
    for r in ranked:
        if r.candidate.gpu.id != gpu_id:
            continue
        checks = []
        for v in r.verdicts:
            if v.action in ("reject", "penalize", "warn"):
                trace: list[tuple[str, Any, bool]] = []
                evaluate(v.rule.when, r.fact, trace)
                checks.append({"rule": v.rule.id, "action": v.action, "because": v.text,
                               "conditions": [{"field": p, "value": _round(val), "held": held}
                                              for p, val, held in trace]})
        out.append({"candidate": r.candidate.label, "feasible": r.feasible, "score": round(r.score, 2),
                    "score_factors": {k: round(v, 3) for k, v in r.factors.items()}, "checks": checks})
    return out
