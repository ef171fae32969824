"""Stage 7b. The pipeline, one direction: request -> candidates (estimator) -> engine -> ranking -> view model.

The view model (`Advice.to_dict`) is what every renderer reads: text, markdown, HTML and JSON all
present the same recommendation.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

from ..candidates import Candidate, build_candidates
from ..catalog import Catalog, Gpu
from ..core.workloads import WORKLOADS
from ..request import Request
from ..rulelang import FACTORS, RuleSet
from ..rulelang.engine import default_engine
from ..rulelang.facts import candidate_fact
from .ranking import Outcome, Ranked, Verdict, rank, why_not

TOP_REJECTED_EXAMPLES = 4
MAX_SUGGESTIONS = 8



PRICE_MAX_AGE_DAYS = 180  # a street price older than about six months is a different market


def price_age_days(price_date: str, today: datetime.date | None = None) -> int | None:
    """Days since a catalog price date ("2026-07", "2026-07-15" or "2026"; a month counts from its first day)."""
    parts = str(price_date).split("-")
    try:
        y, m, d = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1
        return ((today or datetime.date.today()) - datetime.date(y, m, d)).days
    except (ValueError, IndexError):
        return None


def stale_price_warnings(gpus: list[Gpu]) -> list[dict[str, Any]]:
    """A warning, independent of the rules, for each presented GPU whose price is older than 180 days."""
    out, seen = [], set()
    for g in gpus:
        age = price_age_days(g.price_date)
        if g.id in seen or age is None or age <= PRICE_MAX_AGE_DAYS:
            continue
        seen.add(g.id)
        out.append({"rule": "catalog/stale-price", "action": "warn", "sources": [],
                    "because": f"the {g.id} price ({g.price_condition}, {g.price_date}) is {age} days old, past "
                               f"the {PRICE_MAX_AGE_DAYS}-day limit: check a current quote or pass --prices FILE"})
    return out

@dataclass
class Advice:
    catalog: Catalog
    rules: RuleSet
    request: Request
    candidates: list[Candidate]
    outcome: Outcome
    timings: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ view model
    def candidate_dict(self, r: Ranked, *, verdicts: bool = True) -> dict[str, Any]:
        c = r.candidate
        e = c.economics
        wl = WORKLOADS[self.request.workload]
        est = c.estimate.to_dict()
        out = {
            "label": c.label,
            "gpu": c.gpu.id,
            "gpu_name": c.gpu.name,
            "count": c.count,
            "precision": c.precision.id,
            "engine": c.estimate.engine,
            "parallelism": c.estimate.parallelism,
            "link": c.link.kind,
            "score": round(r.score, 2),
            "score_factors": r.factors,
            "objective": round(r.objective, 8),
            "price_each": round(e.price_each, 2),
            "price_note": e.price_note,
            "capex": round(e.capex, 2),
            "energy_cost_per_year": round(e.energy_per_year, 2),
            "tco": round(e.tco, 2),
            "rent": ({"per_hour": round(c.rent.per_hour, 2), "total": round(c.rent.total, 2),
                      "vs_tco": round(c.rent.vs_tco, 3)} if c.rent else None),
            "train_days": round(c.train_days, 2) if wl.trains else None,
            "serving_capacity": ({"batch": c.capacity.batch, "tokens_per_s": round(c.capacity.tokens_per_s, 2)}
                                 if wl.decodes else None),
            "estimate": {k: est[k] for k in ("memory_gib", "fits", "throughput", "power", "assumptions")},
        }
        if verdicts:
            out["verdicts"] = [self.verdict_dict(v) for v in r.verdicts]
        return out

    def verdict_dict(self, v: Verdict) -> dict[str, Any]:
        """A verdict with its rule's sources resolved to citations a reader can open."""
        return {**v.to_dict(), "sources": [self.cite(s) for s in v.rule.sources]}

    def cite(self, sid: str) -> dict[str, str]:
        src = self.catalog.sources.get(sid)
        if src is None:
            return {"id": sid, "cite": sid, "url": ""}
        return {"id": sid, "cite": src.cite(), "url": src.address()}

    def to_dict(self, detail: bool = True) -> dict[str, Any]:
        """The view model. `detail` adds every rejected candidate with its reasons (JSON output);
        the written formats show rejections grouped by rule, so they skip rendering each reason."""
        req, o = self.request, self.outcome
        pick = o.pick
        rejected = []
        for r in o.rejected if detail else ():
            rejected.append({
                "label": r.candidate.label, "gpu": r.candidate.gpu.id, "count": r.candidate.count,
                "precision": r.candidate.precision.id,
                "rules": sorted({v.rule.id for v in r.rejected_by}),
                "because": [v.text for v in r.rejected_by],
            })
        groups: dict[str, dict[str, Any]] = {}
        shown: dict[str, set[str]] = {}
        for r in o.rejected:
            for v in r.rejected_by:
                g = groups.setdefault(v.rule.id, {"rule": v.rule.id, "title": v.rule.title, "factor": v.rule.factor,
                                                  "count": 0, "gpus": [], "examples": []})
                g["count"] += 1
                gpus = shown.setdefault(v.rule.id, set())
                if r.candidate.gpu.id not in gpus:
                    gpus.add(r.candidate.gpu.id)
                    g["gpus"].append(r.candidate.gpu.id)
                    # One example per GPU, so the group shows the spread of what the rule removed.
                    if len(g["examples"]) < TOP_REJECTED_EXAMPLES:
                        g["examples"].append({"label": r.candidate.label, "because": v.text})
        by_factor: dict[str, list[dict[str, Any]]] = {f: [] for f in FACTORS}
        shown = pick or o.cheapest_over_budget  # the factor sections explain whichever option is presented
        if shown:
            for v in shown.verdicts:
                if v.action != "reject":
                    by_factor[v.rule.factor].append(self.verdict_dict(v))
        doc = {
            "request": {**req.to_dict(), "model_name": req.model.name,
                        "model_params_b": round(req.model.params / 1e9, 2), "electricity_note": req.electricity_note},
            "objective": o.objective_name,
            "recommendation": self.candidate_dict(pick) if pick else None,
            "alternatives": [{"why": label, **self.candidate_dict(r)} for label, r in o.alternatives],
            "nothing_fits_budget": pick is None,
            "cheapest_over_budget": (
                {**self.candidate_dict(o.cheapest_over_budget),
                 "shortfall": round(o.cheapest_over_budget.candidate.economics.shortfall, 2)}
                if o.cheapest_over_budget else None),
            "rejected": rejected,
            "rejected_by_rule": sorted(groups.values(), key=lambda g: (-g["count"], g["rule"])),
            "suggestions": self.suggestions(),
            "factors": {f: v for f, v in by_factor.items()},
            "warnings": ([self.verdict_dict(v) for v in pick.verdicts if v.action == "warn"] if pick else [])
            + stale_price_warnings([r.candidate.gpu for r in (pick, shown) if r is not None]),
            "fired_rules": o.fired_rules,
            "candidates_considered": len(self.candidates),
            "sources": self.sources(),
            "catalog_digest": self.catalog.digest,
            "rules_digest": self.rules.digest,
        }
        return doc

    def suggestions(self) -> list[str]:
        """One suggestion per rule and GPU, cheapest configuration first: readable, not exhaustive."""
        best: dict[tuple[str, str], tuple[float, str]] = {}
        for r in self.outcome.ranked + self.outcome.rejected:
            for v in r.verdicts:
                if v.action == "suggest":
                    key = (v.rule.id, r.candidate.gpu.id)
                    cand = (r.candidate.capex, v.text)
                    if key not in best or cand < best[key]:
                        best[key] = cand
        texts = [t for _, t in sorted(best.values())]
        return list(dict.fromkeys(texts))[:MAX_SUGGESTIONS]

    def sources(self) -> list[dict[str, str]]:
        """The documents behind the pick: its GPU's and model's facts, and every rule that fired on it."""
        pick = self.outcome.pick or self.outcome.cheapest_over_budget
        out: dict[str, dict[str, str]] = {}
        if pick:
            rule_sources = tuple(s for v in pick.verdicts for s in v.rule.sources)
            for sid in (pick.candidate.gpu.sources + self.request.model.sources + pick.candidate.precision.sources
                        + rule_sources):
                if sid in self.catalog.sources and sid not in out:
                    out[sid] = self.cite(sid)
        return list(out.values())

    def why_not(self, gpu_id: str) -> list[dict[str, Any]]:
        return why_not(self.rules, self.outcome.ranked + self.outcome.rejected, gpu_id)


def advise(cat: Catalog, ruleset: RuleSet, req: Request) -> Advice:
    t0 = time.perf_counter()
    candidates = build_candidates(cat, req)
    facts = [candidate_fact(cat, c) for c in candidates]
    t1 = time.perf_counter()
    firings = default_engine().fire(ruleset, facts)
    t2 = time.perf_counter()
    outcome = rank(ruleset, candidates, facts, firings, req.workload)
    t3 = time.perf_counter()
    return Advice(cat, ruleset, req, candidates, outcome,
                  {"estimator": t1 - t0, "engine": t2 - t1, "ranking": t3 - t2})
