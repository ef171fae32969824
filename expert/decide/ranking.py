"""Stage 7a. Ranking: hard constraints first, then quality, then cost; soft rules only order what is left.

1. Every `reject` verdict is decisive: a candidate with one is out (legal, buildable, software stack,
   memory and headroom, the requirement, budget).
2. Quality: serving and development take the best quality tier (rules/policy.yaml) that has any
   candidate left; a lower tier appears only when nothing in a better one meets the requirement
   within the budget, and the outcome says so.
3. Simplicity for one person at a desk (development): the fewest GPUs that work.
4. Cost: within the tier, the lowest whole-system TCO of the system sized to the requirement, adjusted
   by the soft rules: effective cost = TCO / product of (1 + w) per prefer and (1 - w) per penalize.
   A penalize 0.2 is therefore worth a 25 % higher price, a prefer 0.05 about 5 %.

The score shown is 100 x (lowest TCO in the tier / TCO) x the rule factors, so 100 is the cheapest
system in the tier with no soft rule against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..candidates import NEVER, Candidate
from ..core.once import once
from ..core.policy import Policy
from ..core.workloads import WORKLOADS
from ..rulelang import Rule, RuleSet, get_path
from ..rulelang.conditions import evaluate

OBJECTIVE = ("the lowest total cost of ownership (whole system sized to the requirement, energy over the years "
             "of ownership), at the best quality tier that meets the requirement within the budget, adjusted by "
             "the soft rules")

class Verdict:
    """One rule's verdict on one ranked candidate; its fact (what the rule read and its text renders) is the
    candidate's, built when first asked for."""

    __slots__ = ("rule", "ranked")

    def __init__(self, rule: Rule, ranked: Ranked) -> None:
        self.rule, self.ranked = rule, ranked

    def __repr__(self) -> str:
        return f"Verdict({self.rule.id!r}, {self.candidate.label!r})"

    @property
    def candidate(self) -> Candidate:
        return self.ranked.candidate

    @property
    def fact(self) -> dict[str, Any]:
        return self.ranked.fact

    @property
    def action(self) -> str:
        return self.rule.action.kind

    @property
    def text(self) -> str:
        rule, c = self.rule, self.ranked.candidate
        b = c.basis
        if b is None or not rule.budget_free:
            return rule.render(self.fact)
        # The same text for every candidate of this basis (a budget ladder's configuration): kept in it, so a
        # ladder's later requests render (and build the facts of) only what their budget changes.
        k = ("because", id(rule))
        hit = b.kept.get(k)
        if hit is not None and hit[0] is rule:
            return hit[1]
        text = rule.render(self.fact)
        b.kept[k] = (rule, text)
        return text

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


@dataclass(eq=False)
class Ranked:
    """A candidate with the rules that fired on it. Its fact and its Verdict objects are built when first asked
    for: a request ranks hundreds of candidates and explains a few."""
    candidate: Candidate
    rules: tuple[Rule, ...] = ()  # every rule that fired on it, in the rule set's order
    fact_of: Callable[[Candidate], dict[str, Any]] | None = field(default=None, repr=False)
    score: float = 0.0
    effective_cost: float = 0.0  # TCO / rule factors: what the ranking minimises within a tier
    factors: dict[str, float] = field(default_factory=dict)
    rejecting: tuple[Rule, ...] = ()  # the `reject` rules among them

    @once
    def fact(self) -> dict[str, Any]:
        if self.fact_of is None:
            raise ValueError(f"no fact for {self.candidate.label}")
        return self.fact_of(self.candidate)

    @once
    def verdicts(self) -> list[Verdict]:
        return [Verdict(rule, self) for rule in self.rules]

    @once
    def rejected_by(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.rule.action.kind == "reject"]

    @property
    def feasible(self) -> bool:
        return not self.rejecting

    @property
    def budget_only(self) -> bool:
        """Rejected, but only for money: it would work with a larger budget."""
        rej = self.rejecting
        return bool(rej) and all(r.scope == "budget" for r in rej)


@dataclass
class Option:
    role: str  # good | better | best
    ranked: Ranked
    why: str  # the one-line trade-off, in units


@dataclass
class Outcome:
    objective_name: str
    ranked: list[Ranked]  # feasible, best first (best tier first, then effective cost)
    rejected: list[Ranked]
    pick: Ranked | None
    options: list[Option]
    tier: str  # the quality tier the pick comes from
    tier_note: str  # why a lower tier, when it is one ("" otherwise)
    nearest_misses: list[Ranked]
    cheapest_over_budget: Ranked | None
    fired_rules: dict[str, int]

    @property
    def alternatives(self) -> list[tuple[str, Ranked]]:
        """The options other than the pick, as (role, candidate)."""
        return [(o.role, o.ranked) for o in self.options if o.ranked is not self.pick]


def _capacity(c: Candidate) -> float:
    """What 'the most the budget buys' maximises: users served (serving), free memory (development),
    speed (training)."""
    wl = WORKLOADS[c.request.workload]
    if wl.trains:
        return -c.train_days
    if wl.interactive:
        return c.estimate.memory_gib["headroom_per_gpu"] * c.gpus
    return float(c.sizing.users_per_replica * c.sizing.replicas)


# What each distinct set of fired rules means for the ranking, per rule set (by identity, the rule set held).
_MEANING: dict[int, tuple[RuleSet, dict]] = {}
MEANING_LIMIT = 4096


def _meanings(ruleset: RuleSet) -> dict[tuple[str, ...], tuple[tuple[Rule, ...], tuple[Rule, ...], dict[str, float],
                                                              float]]:
    hit = _MEANING.get(id(ruleset))
    if hit is None or hit[0] is not ruleset:
        if len(_MEANING) >= 8:
            _MEANING.clear()
        hit = _MEANING[id(ruleset)] = (ruleset, {})
    return hit[1]


def rank(ruleset: RuleSet, candidates: list[Candidate], fired: dict[int, tuple[str, ...]], workload: str,
         policy: Policy, fact_of: Callable[[Candidate], dict[str, Any]] | None = None) -> Outcome:
    """`fired`: each candidate's fired rule ids in the rule set's order (RuleEngine.fire_candidates); `fact_of`
    builds a candidate's fact when a verdict on it is explained."""
    # What a set of fired rules means for the ranking (which reject, the soft rules' factor per family) is the
    # same for every candidate it fired on: worked out once per distinct set, and kept across requests per rule
    # set (a sweep's requests fire the same sets again and again).
    meaning = _meanings(ruleset)
    fired_count: dict[tuple[str, ...], int] = {}
    tiers = policy.tiers
    # Development boxes and serving trade quality only when they must; training precisions are one tier.
    by_tier = WORKLOADS[workload].decodes
    trains = WORKLOADS[workload].trains
    margin = trains and policy.prefer_schedule_margin
    # One person at a desk gets the simplest box first: one card rather than a split over two when one fits.
    fewest_first = WORKLOADS[workload].interactive

    def quality(c: Candidate) -> tuple[int, int]:
        if by_tier:
            return (c.tier, c.quality_class)
        # A run: the reference numerics (bf16) first, then the systems that meet the deadline even at the slow
        # end of the speed range.
        return (c.quality_class if trains else 0, int(margin and c.late_at_slow_end))

    # One pass over the candidates (a request ranks hundreds), in lists parallel to `everything`: each one's
    # product of its (rounded) rule factors (its score's multiplier), its quality, its sort key; and per quality
    # the cheapest feasible TCO (the score's 100).
    everything: list[Ranked] = []
    prods: list[float] = []
    quals: list[tuple[int, int]] = []
    keys: list[tuple] = []
    floor: dict[tuple[int, int], float] = {}
    fidx: list[int] = []
    ridx: list[int] = []
    by_id = ruleset.by_id
    inf = math.inf
    for i, c in enumerate(candidates):
        rids = fired.get(c.id, ())
        m = meaning.get(rids)
        if m is None:
            if len(meaning) >= MEANING_LIMIT:
                meaning.clear()
            rules = tuple(by_id[rid] for rid in rids)
            factors: dict[str, float] = {}
            for rule in rules:
                a = rule.action
                if a.kind == "prefer":
                    factors[rule.factor] = factors.get(rule.factor, 1.0) * (1 + a.weight)
                elif a.kind == "penalize":
                    factors[rule.factor] = factors.get(rule.factor, 1.0) * (1 - a.weight)
            shown = {k: round(val, 4) for k, val in sorted(factors.items())}
            m = meaning[rids] = (rules, tuple(r for r in rules if r.action.kind == "reject"), shown,
                                 math.prod(factors.values()), math.prod(shown.values()))
        fired_count[rids] = fired_count.get(rids, 0) + 1
        rules, rejecting, factors, prod, shown_prod = m
        tco = c.tco
        effective = tco / prod if tco > 0 and prod > 0 else inf
        # One factors dict per distinct set of fired rules, shared by its candidates (never written: the view
        # copies what it shows).
        everything.append(Ranked(c, rules, fact_of, 0.0, effective, factors, rejecting))
        prods.append(shown_prod)
        q = quality(c)
        quals.append(q)
        if rejecting:
            ridx.append(i)
            if q not in floor:
                floor[q] = inf
        else:
            fidx.append(i)
            floor[q] = min(floor.get(q, inf), tco)
        # Ties (identical costs) break on price, then GPU count, then ids: output never depends on fact order.
        gpus = c.gpus
        keys.append((*q, gpus if fewest_first else 0, round(effective, 6), c.capex, gpus, c.gpu.id,
                     c.precision.id))
    counts: dict[str, int] = {}
    for rids, times in fired_count.items():
        for rid in rids:
            counts[rid] = counts.get(rid, 0) + times
    for r, q, prod in zip(everything, quals, prods, strict=True):
        cheapest = floor[q]
        tco = r.candidate.tco
        base = cheapest / tco if math.isfinite(cheapest) and tco > 0 else 0.0
        r.score = 100 * base * prod
    best_tier = min((everything[i].candidate.tier for i in fidx), default=0) if by_tier else 0
    # The rejected are listed cheapest first, each price's in the same order.
    ranked = [everything[i] for i in sorted(fidx, key=keys.__getitem__)]
    rkeys = {i: (everything[i].candidate.capex, keys[i]) for i in ridx}
    rejected = [everything[i] for i in sorted(ridx, key=rkeys.__getitem__)]
    pick = ranked[0] if ranked else None
    tier_name = tiers[min(best_tier, len(tiers) - 1)].name if pick else ""
    tier_note = ""
    if pick and by_tier and best_tier > 0:
        better = tiers[best_tier - 1].name
        tier_note = (f"nothing at {better} meets the requirement within the budget, so the pick is {tier_name} "
                     f"({pick.candidate.precision.id}: {pick.candidate.precision.quality} quality loss)")
    elif pick and margin and quality(pick.candidate)[1]:
        tier_note = ("nothing within the budget meets the deadline at the slow end of the speed range, so the pick "
                     "meets it at the expected speed only")
    options = _options(ranked, pick)
    # The cheapest (in the rejected's order) of those rejected only for money, when nothing is feasible.
    cheapest_over = None if ranked else next((r for r in rejected if r.budget_only), None)
    misses = _nearest_misses(rejected, pick)
    return Outcome(OBJECTIVE, ranked, rejected, pick, options, tier_name, tier_note, misses, cheapest_over,
                   dict(sorted(counts.items())))


def _options(ranked: list[Ranked], pick: Ranked | None) -> list[Option]:
    """Good (the cheapest system that meets the requirement in the pick's quality tier), better (the pick:
    the best value at the best quality the budget allows), best (the most the budget buys at the pick's
    quality: more users, more headroom, a shorter run), each with its trade-off in units."""
    if not pick:
        return []
    p = pick.candidate
    cur = p.request.currency
    same_tier = [r for r in ranked if r.candidate.tier == p.tier]
    good = min(same_tier, key=lambda r: (r.candidate.capex, r.candidate.gpus, r.effective_cost))
    same_quality = [r for r in same_tier if r.candidate.quality_class == p.quality_class]
    best = max(same_quality, key=lambda r: (_capacity(r.candidate), -r.candidate.capex))
    out = [Option("good", good, _tradeoff("good", good.candidate, p, cur)),
           Option("better", pick, _tradeoff("better", p, p, cur)),
           Option("best", best, _tradeoff("best", best.candidate, p, cur))]
    return out


def _serves(c: Candidate) -> str:
    wl = WORKLOADS[c.request.workload]
    if wl.trains:
        return f"{c.train_days:,.1f} days to train" if c.train_days < NEVER else "cannot train"
    sz = c.sizing
    cap = sz.users_per_replica * sz.replicas
    return (f"up to {cap:,} users at {c.request.min_tokens_per_s:g}+ tokens/s each "
            f"({sz.per_user_tps:,.1f} tokens/s and {sz.ttft_s:,.2f} s to first token at {c.request.users:,})")


def _tradeoff(role: str, c: Candidate, pick: Candidate, cur: str) -> str:
    money = f"{c.capex:,.0f} {cur}"
    if role == "better":
        per = (f"{c.cost_per_million_tokens:,.2f} {cur} per million tokens" if c.cost_per_million_tokens else
               f"{c.run_cost:,.0f} {cur} per run" if c.run_cost else "")
        return f"{money}; {_serves(c)}; the lowest cost of ownership at this quality" + (f"; {per}" if per else "")
    if c is pick:
        # Said outright: a reader seeing one system twice should know it is the answer, not a slip.
        why = ("nothing cheaper meets the requirement at this quality" if role == "good" else
               "nothing the budget buys at this quality does more")
        return f"{money}; {_serves(c)}; the same system as the pick: {why}"
    delta = c.capex - pick.capex
    if role == "good":
        quality = "" if c.tier == pick.tier else f", at {c.precision.id} ({c.precision.quality} quality loss)"
        if c.late_at_slow_end and not pick.late_at_slow_end:
            quality += (f", meeting the {c.request.deadline_days:g}-day deadline only at the expected speed "
                        f"({c.train_days_slow:,.1f} days at the slow end)")
        return f"{money} ({-delta:,.0f} less than the pick{quality}); {_serves(c)}"
    return f"{money} (+{delta:,.0f} over the pick) buys {_serves(c)}"


# "Near": within twice the budget (as before) and, for a run, within twice the deadline: a configuration that a
# doubled budget or deadline would admit is worth a sentence; one off by orders of magnitude is noise.
NEAR_MISS_RATIO = 2.0


def _nearest_misses(rejected: list[Ranked], pick: Ranked | None, n: int = 3) -> list[Ranked]:
    """Rejected by one rule only and not absurdly far from the request: what an expert would mention."""
    budget = (pick.candidate.request.budget if pick else (rejected[0].candidate.request.budget if rejected else 0))
    def close(c: Candidate) -> bool:
        # A run that takes 670 times the deadline is not a near miss whatever its price.
        return (not WORKLOADS[c.request.workload].trains or c.train_days <= NEAR_MISS_RATIO * c.request.deadline_days)

    near = [r for r in rejected if len(r.rejecting) == 1 and r.candidate.capex <= NEAR_MISS_RATIO * budget
            and r.candidate.fits and close(r.candidate)]
    near.sort(key=lambda r: (r.effective_cost, r.candidate.capex))
    out: list[Ranked] = []
    seen: set[str] = set()
    for r in near:
        if r.candidate.gpu.id not in seen:
            seen.add(r.candidate.gpu.id)
            out.append(r)
        if len(out) == n:
            break
    return out


def why_not(ruleset: RuleSet, ranked: list[Ranked], gpu_id: str, pick: Ranked | None = None) -> list[dict[str, Any]]:
    """For each candidate on one GPU: which rules rejected or penalised it, condition by condition, and what
    would have to change for it to win."""
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
        out.append({"candidate": r.candidate.system_label, "feasible": r.feasible, "score": round(r.score, 2),
                    "score_factors": {k: round(v, 3) for k, v in r.factors.items()}, "checks": checks,
                    "to_win": to_win(r, pick)})
    return out


def to_win(r: Ranked, pick: Ranked | None) -> str:
    """What would have to change for this candidate to be the pick, in units."""
    c = r.candidate
    cur = c.request.currency
    if r.rejected_by:
        parts = []
        for v in r.rejected_by:
            if v.rule.scope == "budget":
                parts.append(f"a budget of at least {c.capex:,.0f} {cur}")
            else:
                parts.append(f"`{v.rule.id}` no longer applying ({v.rule.title.lower()})")
        return "it would need " + " and ".join(parts)
    if pick is None or r is pick:
        return "it is the pick"
    if c.tier != pick.candidate.tier and WORKLOADS[c.request.workload].decodes:
        return (f"it is a lower quality tier ({c.precision.id}) than the pick ({pick.candidate.precision.id}); "
                "it wins only if nothing in the better tier meets the requirement within the budget")
    gap = 1 - pick.effective_cost / r.effective_cost if r.effective_cost else 0.0
    # The TCO at which its effective cost equals the pick's; the GPU price that would get it there.
    needed_tco = pick.effective_cost * math.prod(r.factors.values())
    price = c.economics.price_each - (c.tco - needed_tco) / max(c.gpus, 1)
    how = f", e.g. at {price:,.0f} {cur} per GPU" if price > 0 else ""
    return (f"its effective cost ({r.effective_cost:,.0f} {cur}) would have to fall {gap:.0%} to the pick's "
            f"({pick.effective_cost:,.0f} {cur}){how}")
