"""Stage 7b. The pipeline, one direction: request -> candidates (estimator) -> engine -> ranking -> view model.

The view model (`Advice.to_dict`) is what every renderer reads: text, markdown, HTML and JSON all
present the same recommendation.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..candidates import Candidate, build_candidates
from ..catalog import Catalog, Gpu
from ..core.docschema import SCHEMA_VERSION
from ..core.policy import Policy, load_policy
from ..core.workloads import WORKLOADS
from ..request import Request
from ..rulelang import FACTORS, RuleSet
from ..rulelang.engine import default_engine
from ..rulelang.facts import candidate_fact, field_value
from .ranking import Outcome, Ranked, Verdict, rank, why_not

TOP_REJECTED_EXAMPLES = 4
MAX_SUGGESTIONS = 8



PRICE_MAX_AGE_DAYS = 180  # a street price older than about six months is a different market


def _plan_summary(plan: Any, days: float | None = None, gpus: int = 0) -> dict[str, Any]:
    """The training plan a team would run: strategy, layout, per-GPU memory, time, GPU-hours and the launch
    snippet. `days` is the candidate's time for the requested tokens (goodput included), so the plan, the
    decision line and the cost of the run quote one number."""
    d = plan.to_dict()
    if days is not None and days >= 1e15:
        days = None
    gpu_hours = days * 24 * gpus if days is not None and gpus else d.get("gpu_hours")
    return {"strategy": d["strategy"]["name"], "layout": d["layout"]["label"], "bubble": d["layout"]["bubble"],
            "mfu": d.get("mfu"), "days": round(days, 2) if days is not None else d.get("days"),
            "gpu_hours": round(gpu_hours) if gpu_hours else None, "goodput": d.get("goodput"),
            "per_gpu_gib": d["per_gpu_gib"], "host_gib_per_node": d["host_gib_per_node"],
            "shares": d["shares"], "launch": d.get("launch"), "notes": d.get("notes", [])[:7],
            "layout_why": next((n for n in d.get("notes", []) if n.startswith("layout: ")), "")}


def _today() -> datetime.date:
    """Today, or GPU_EXPERT_TODAY (YYYY-MM-DD) so that tests and audits render the same advice every day."""
    pinned = os.environ.get("GPU_EXPERT_TODAY", "")
    try:
        return datetime.date.fromisoformat(pinned) if pinned else datetime.date.today()
    except ValueError:
        return datetime.date.today()


def price_age_days(price_date: str, today: datetime.date | None = None) -> int | None:
    """Days since a catalog price date ("2026-07", "2026-07-15" or "2026"; a month counts from its first day)."""
    parts = str(price_date).split("-")
    try:
        y, m, d = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1, int(parts[2]) if len(parts) > 2 else 1
        return ((today or _today()) - datetime.date(y, m, d)).days
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
    policy: Policy
    timings: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ view model
    def candidate_dict(self, r: Ranked, *, verdicts: bool = True) -> dict[str, Any]:
        c = r.candidate
        e = c.economics
        sz = c.sizing
        wl = WORKLOADS[self.request.workload]
        est = c.estimate.to_dict()
        out = {
            "label": c.label,
            "system": c.system_label,
            "gpu": c.gpu.id,
            "gpu_name": c.gpu.name,
            "count": c.count,
            "replicas": sz.replicas,
            "gpus": c.gpus,
            "precision": c.precision.id,
            "quality_tier": self.policy_tier_name(c.tier),
            "engine": c.estimate.engine,
            "parallelism": c.estimate.parallelism,
            "link": c.link.kind,
            "score": round(r.score, 2),
            "score_factors": dict(r.factors),
            "effective_cost": round(r.effective_cost, 2) if r.effective_cost != float("inf") else None,
            "price_each": round(e.price_each, 2),
            "price_note": e.price_note,
            "capex": round(e.capex, 2),
            "energy_cost_per_year": round(e.energy_per_year, 2),
            "tco": round(e.tco, 2),
            "gpu_capex": round(e.gpu_capex, 2),
            "platform_capex": round(e.platform_capex, 2),
            "platform_note": e.platform_note,
            "hosting_per_year": round(e.hosting_per_year, 2),
            "rent": ({"per_hour": round(c.rent.per_hour, 2), "total": round(c.rent.total, 2),
                      "vs_buy": round(c.rent.vs_tco, 3), "basis": c.rent.basis, "break_even": c.rent.break_even,
                      "cheaper": "rent" if c.rent.vs_tco < 1 else "buy"} if c.rent else None),
            "train_days": round(c.train_days, 2) if wl.trains else None,
            "run_cost": round(c.run_cost, 2) if wl.trains else None,
            "sizing": ({"meets": sz.meets, "users_per_replica": sz.users_per_replica, "replicas": sz.replicas,
                        "users_capacity": sz.users_per_replica * sz.replicas,
                        "per_user_tokens_per_s": round(sz.per_user_tps, 2), "ttft_s": round(sz.ttft_s, 3),
                        "total_tokens_per_s": round(sz.total_tps, 2), "shortfall": sz.shortfall}
                       if wl.decodes else {"meets": sz.meets, "shortfall": sz.shortfall}),
            "cost_per_million_tokens": round(c.cost_per_million_tokens, 4) if wl.decodes else None,
            "energy_per_million_tokens": round(c.energy_per_million_tokens, 4),
            "cost_per_user": round(c.cost_per_user, 2) if wl.decodes else None,
            "estimate": {k: est[k] for k in ("memory_gib", "fits", "throughput", "power", "assumptions")},
            "plan": (_plan_summary(c.estimate.plan, c.train_days if self.request.tokens else None, c.gpus)
                     if c.estimate.plan is not None else None),
        }
        if verdicts:
            out["verdicts"] = [self.verdict_dict(v) for v in r.verdicts]
        return out

    def policy_tier_name(self, tier: int) -> str:
        tiers = self.policy.tiers
        return tiers[min(tier, len(tiers) - 1)].name

    def decision(self) -> dict[str, Any]:
        """The three numbers a purchase decision turns on, for the pick: what it costs, what it delivers at
        the requirement, and what a unit of output costs."""
        o = self.outcome
        return self.decision_for(o.pick or o.cheapest_over_budget)

    def decision_for(self, r: Ranked | None) -> dict[str, Any]:
        """The decision numbers of one candidate (the pick's in `decision`; `expert compare` shows several)."""
        o = self.outcome
        if r is None:
            return {}
        c = r.candidate
        cur = self.request.currency
        wl = WORKLOADS[self.request.workload]
        if wl.trains:
            delivers = (f"{c.train_days:,.1f} days to train {self.request.tokens:,.0f} tokens"
                        if c.train_days < 1e15 else "cannot train")
            unit = f"{c.run_cost:,.0f} {cur} per run (energy + the run's share of the purchase)"
        else:
            sz = c.sizing
            n = self.request.users
            delivers = (f"{n:,} user{'s' if n != 1 else ''} at {sz.per_user_tps:,.1f} tokens/s each, first token in "
                        f"{sz.ttft_s:,.2f} s (up to {sz.users_per_replica * sz.replicas:,} users within the "
                        f"requirement)")
            unit = f"{c.cost_per_million_tokens:,.2f} {cur} per million output tokens over {self.request.years:g} years"
        if c.rent:
            verdict = "rent" if c.rent.vs_tco < 1 else "buy"
            buy_or_rent = (f"{verdict}: renting costs {c.rent.total:,.0f} {cur} ({c.rent.basis}), "
                           f"{c.rent.vs_tco:.0%} of buying for the same use; {c.rent.break_even}")
        else:
            # No sourced rental price for the pick's GPU: compare with the cheapest rentable system that meets
            # the same requirement (renting is a candidate beside buying).
            rentable = [x.candidate for x in o.ranked if x.candidate.rent and x.candidate.tier == c.tier
                        and x.candidate.quality_class == c.quality_class]
            alt = min(rentable, key=lambda x: x.rent.total, default=None)
            if alt is None:
                buy_or_rent = "buy: no system within the budget that meets the requirement has a sourced rental price"
            else:
                verdict = "rent" if alt.rent.total < c.tco else "buy"
                buy_or_rent = (f"{verdict}: the pick's GPU has no sourced rental price; renting {alt.system_label}, "
                               "the cheapest rentable system that meets the requirement at this quality, costs "
                               f"{alt.rent.total:,.0f} "
                               f"{cur} ({alt.rent.basis}) against the pick's {c.tco:,.0f} {cur} TCO; "
                               f"{alt.rent.break_even} for that system")
        run = self._rent_the_run(c) if wl.trains else ""
        if run:
            # Renting another system for this one run beats both buying and renting the pick: say that first.
            buy_or_rent = f"rent: {run}; the pick: {buy_or_rent.split(': ', 1)[1]}"
        return {"system_cost": round(c.capex, 2),
                "system_cost_text": (f"{c.capex:,.0f} {cur} ({c.system_label}; GPUs {c.economics.gpu_capex:,.0f}"
                                     f" + platform {c.economics.platform_capex:,.0f})"),
                "delivers": delivers, "unit_cost": unit, "buy_or_rent": buy_or_rent}

    def _rent_the_run(self, c: Any) -> str:
        """A training run is a finite use: a system the budget cannot buy may still be rented for the run. The
        cheapest rental that meets the deadline at the pick's quality, if it is cheaper than this one and
        within the budget, whether or not buying it would be."""
        o, req = self.outcome, self.request
        pool = [x.candidate for x in o.ranked if x.feasible] + [x.candidate for x in o.rejected if x.budget_only]
        here = c.rent.total if c.rent else c.capex
        runs = [x for x in pool if x.rent and x.sizing.meets and x.tier == c.tier
                and x.quality_class == c.quality_class and x.rent.total <= req.budget and x.rent.total < here]
        alt = min(runs, key=lambda x: x.rent.total, default=None)
        if alt is None:
            return ""
        bought = "" if alt.capex <= req.budget else f", though buying it ({alt.capex:,.0f} {req.currency}) would not"
        return (f"for this run, renting {alt.system_label} costs {alt.rent.total:,.0f} {req.currency} "
                f"({alt.rent.basis}), within the budget{bought}")

    def verdict_dict(self, v: Verdict) -> dict[str, Any]:
        """A verdict with its rule's sources resolved to citations a reader can open."""
        return {**v.to_dict(), "sources": [self.cite(s) for s in v.rule.sources]}

    def cite(self, sid: str) -> dict[str, str]:
        src = self.catalog.sources.get(sid)
        if src is None:
            return {"id": sid, "cite": sid, "url": ""}
        return {"id": sid, "cite": src.cite(), "url": src.address()}

    def to_dict(self, detail: bool = True, top: int | None = None) -> dict[str, Any]:
        """The view model. `detail` adds every rejected candidate with its reasons (JSON output);
        the written formats show rejections grouped by rule, so they skip rendering each reason.
        `top` adds the first N feasible options in rank order (`advise --top N`); absent by default."""
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
            gid = r.candidate.gpu.id
            for rule in r.rejecting:
                g = groups.get(rule.id)
                if g is None:  # (not setdefault: that builds the group's dict for each of hundreds of candidates)
                    g = groups[rule.id] = {"rule": rule.id, "title": rule.title, "factor": rule.factor, "count": 0,
                                           "gpus": [], "examples": []}
                    shown[rule.id] = set()
                g["count"] += 1
                gpus = shown[rule.id]
                if gid not in gpus:
                    gpus.add(gid)
                    g["gpus"].append(gid)
                    # One example per GPU, so the group shows the spread of what the rule removed.
                    if len(g["examples"]) < TOP_REJECTED_EXAMPLES:
                        g["examples"].append({"label": r.candidate.label, "because": Verdict(rule, r).text})
        by_factor: dict[str, list[dict[str, Any]]] = {f: [] for f in FACTORS}
        shown = pick or o.cheapest_over_budget  # the factor sections explain whichever option is presented
        if shown:
            for v in shown.verdicts:
                if v.action != "reject":
                    by_factor[v.rule.factor].append(self.verdict_dict(v))
        doc = {
            "schema_version": SCHEMA_VERSION,
            "currency": req.currency,
            "request": {**req.to_dict(), "model_name": req.model.name,
                        "model_params_b": round(req.model.params / 1e9, 2), "electricity_note": req.electricity_note},
            "objective": o.objective_name,
            "requirement": req.requirement(),
            "decision": self.decision(),
            "quality_tier": o.tier,
            "quality_note": o.tier_note,
            "recommendation": ({**self.candidate_dict(pick), "role": "better", "why": next(
                (x.why for x in o.options if x.ranked is pick), "")} if pick else None),
            "options": [{"role": x.role, "why": x.why, **self.candidate_dict(x.ranked, verdicts=False)}
                        for x in o.options],
            "alternatives": [{"why": f"{x.role}: {x.why}", **self.candidate_dict(x.ranked)}
                             for x in o.options if x.ranked is not pick],
            "unused_budget": round(req.budget - pick.candidate.capex, 2) if pick else None,
            "nearest_misses": [{"label": r.candidate.system_label, "gpu": r.candidate.gpu.id,
                                "capex": round(r.candidate.capex, 2), "rule": r.rejected_by[0].rule.id,
                                "because": r.rejected_by[0].text} for r in o.nearest_misses],
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
        if top:
            doc["top"] = [{"rank": i, **self.candidate_dict(r, verdicts=False)}
                          for i, r in enumerate(o.ranked[:top], 1)]
        return doc

    def sweep_row(self) -> dict[str, Any]:
        """The fields `expert sweep` writes for this request: the figures to_dict gives for the presented system
        (the pick, else the cheapest over budget) and its decision numbers, without building the rest of the view
        (every verdict's text, the estimate's assumptions in words, the rejections by rule, the suggestions): a
        sweep of thousands writes one line each. tests/test_speed_paths.py checks it against to_dict's."""
        o, req = self.outcome, self.request
        shown = o.pick or o.cheapest_over_budget
        row: dict[str, Any] = {"model": req.model.id, "workload": req.workload, "budget": req.budget,
                               "currency": req.currency, "pick": o.pick.candidate.label if o.pick else None,
                               "presented": "pick" if o.pick else "cheapest_over_budget" if shown else None}
        if shown is None:
            row.update(dict.fromkeys(("gpu", "count", "replicas", "precision", "capex", "gpu_capex",
                                      "platform_capex", "tco", "cost_per_million_tokens", "train_days", "run_cost",
                                      "delivers", "unit_cost", "buy_or_rent")))
        else:
            c, e = shown.candidate, shown.candidate.economics
            wl = WORKLOADS[req.workload]
            dec = self.decision_for(shown)
            # Rounded as candidate_dict rounds them.
            row.update({"gpu": c.gpu.id, "count": c.count, "replicas": c.sizing.replicas, "precision": c.precision.id,
                        "capex": round(e.capex, 2), "gpu_capex": round(e.gpu_capex, 2),
                        "platform_capex": round(e.platform_capex, 2), "tco": round(e.tco, 2),
                        "cost_per_million_tokens": round(c.cost_per_million_tokens, 4) if wl.decodes else None,
                        "train_days": round(c.train_days, 2) if wl.trains else None,
                        "run_cost": round(c.run_cost, 2) if wl.trains else None,
                        "delivers": dec["delivers"], "unit_cost": dec["unit_cost"],
                        "buy_or_rent": dec["buy_or_rent"]})
        row["nothing_fits_budget"] = o.pick is None
        row["error"] = None
        return row

    def suggestions(self) -> list[str]:
        """Readable, not exhaustive: a suggestion that leads to another configuration (`points_to`) once per rule
        and GPU, the cheapest first, and only when that configuration was not itself rejected (3 x P40 "would
        hold" a 70B fine-tune that PCIe and host memory rule out is no advice); any other suggestion once per
        rule, the pick's wording first."""
        o = self.outcome
        rejected: set[tuple[str, int, str]] | None = None  # the rejected configurations, when a suggestion points
        pick = o.pick or o.cheapest_over_budget
        # Per key, the verdicts at the lowest (not the pick, capex); their texts are rendered only for those (a
        # template render per suggest verdict of every candidate was a sixth of a sweep's request): the text
        # only breaks ties, so the winner and the order are those of ranking every (flag, capex, text).
        best: dict[tuple[str, ...], tuple[int, float, list]] = {}
        for r in o.ranked + o.rejected:
            c = r.candidate
            for rule in r.rules:
                if rule.action.kind != "suggest":
                    continue
                v = Verdict(rule, r)
                pt = rule.points_to
                if pt:
                    # The fields it points with, computed from the candidate (no fact built for every candidate
                    # a suggestion fired on: only the winners' texts are rendered, below).
                    target = (c.gpu.id, field_value(self.catalog, c, pt["count"]) if "count" in pt else c.count,
                              field_value(self.catalog, c, pt["precision"]) if "precision" in pt else c.precision.id)
                    if rejected is None:
                        rejected = {(x.candidate.gpu.id, x.candidate.count, x.candidate.precision.id)
                                    for x in o.rejected}
                    if target in rejected:
                        continue
                    key: tuple[str, ...] = (v.rule.id, c.gpu.id)
                else:
                    key = (v.rule.id,)
                flag, capex = 0 if r is pick else 1, c.capex
                held = best.get(key)
                if held is None or (flag, capex) < held[:2]:
                    best[key] = (flag, capex, [v])
                elif (flag, capex) == held[:2]:
                    held[2].append(v)
        texts = [t for *_, t in sorted((flag, capex, min(v.text for v in vs)) for flag, capex, vs in best.values())]
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
        return why_not(self.rules, self.outcome.ranked + self.outcome.rejected, gpu_id, self.outcome.pick)


def advise(cat: Catalog, ruleset: RuleSet, req: Request, policy: Policy | None = None,
           gpus: list[Gpu] | None = None) -> Advice:
    """`gpus` narrows the candidate pool before the engine (`--only` / `--exclude`); None weighs the catalog."""
    pol = policy or load_policy()
    t0 = time.perf_counter()
    candidates = build_candidates(cat, req, gpus, policy=pol)
    t1 = time.perf_counter()
    fired = default_engine().fire_candidates(ruleset, cat, candidates)
    t2 = time.perf_counter()
    outcome = rank(ruleset, candidates, fired, req.workload, pol, lambda c: candidate_fact(cat, c))
    t3 = time.perf_counter()
    return Advice(cat, ruleset, req, candidates, outcome, pol,
                  {"estimator": t1 - t0, "engine": t2 - t1, "ranking": t3 - t2})
