"""Stage 4: candidate configurations (GPU x count x precision), each a typed record.

The estimator says what a configuration does; a candidate adds what it costs and what it offers the
request (economics, serving capacity, days to train, the smallest count that fits). Ranking and the
view model read these records; the rule engine's fact is built from them in one place
(rulelang/facts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .catalog import Catalog, Gpu, Precision
from .core.once import once
from .core.policy import Policy, load_policy
from .core.workloads import WORKLOADS
from .estimate import Config, Estimate, Fit, Link, estimate, has_fabric, memo, nodes_spanned, serving_fit
from .estimate.engines import engine_info
from .estimate.power import power
from .estimate.serving import load_curve
from .request import Request

# Which precisions `auto` weighs, cluster sizes, serving limits and quality tiers are policy
# (rules/policy.yaml, core/policy.py), not code.

NEVER = 1e15  # stands in for "never" (e.g. training days of a configuration that cannot run)


@dataclass(frozen=True)
class Economics:
    """Whole-system cost on one basis (request currency): the GPUs, the platform they are built into
    (host, server or baseboard, cluster network), energy, and datacenter hosting (facts/platforms.yaml)."""
    price_each: float  # per GPU
    price_note: str  # where the GPU price came from
    gpu_capex: float  # the GPUs alone
    platform_capex: float  # host / server / baseboard / network the GPUs need (0 when the price includes it)
    platform_note: str
    energy_per_year: float
    energy_total: float  # over the request's years
    hosting_per_year: float  # colocation of a datacenter deployment (0 on a desk)
    budget: float
    years: float
    host_memory_gib: float = 0.0  # host RAM per node of the platform (what optimizer offload can use)
    watts: float = 0.0  # the whole system at the wall: every replica's GPUs at load plus the host(s) they share
    host_watts: float = 0.0  # the host(s) part of it

    @once
    def capex(self) -> float:
        """What is bought: the GPUs and the platform around them."""
        return self.gpu_capex + self.platform_capex

    @property
    def gpu_share(self) -> float:
        return self.gpu_capex / self.capex if self.capex else 0.0

    @once
    def tco(self) -> float:
        """Capex plus energy and hosting over the request's years."""
        return self.capex + self.energy_total + self.hosting_per_year * self.years

    @property
    def budget_ratio(self) -> float:
        return self.capex / self.budget

    @property
    def energy_share(self) -> float:
        return self.energy_total / self.tco if self.tco else 0.0

    @property
    def platform_share(self) -> float:
        return self.platform_capex / self.capex if self.capex else 0.0

    @property
    def shortfall(self) -> float:
        return max(0.0, self.capex - self.budget)

    def at_budget(self, budget: float) -> Economics:
        """The same system's economics for another budget: dataclasses.replace without its per-field checks (a
        budget ladder copies a hundred per request). The derived figures kept so far (`once`: capex, TCO) do not
        read the budget, so they are kept too."""
        other = object.__new__(Economics)
        other.__dict__.update(self.__dict__)
        other.__dict__["budget"] = budget
        return other


@dataclass(frozen=True)
class Rent:
    """Renting the same GPUs in the cloud (prices include host, power and hosting) for the real usage:
    a finite run for its duration plus a setup overhead, a service for hours/day over the years."""
    per_hour: float
    total: float  # for the usage
    vs_tco: float  # rent total / buying's TCO for the same usage
    basis: str  # what the total covers
    break_even: str  # when buying starts to pay, in months of use or number of runs

@dataclass(frozen=True)
class Sizing:
    """The system sized to the request's requirement.

    Serving and development: `replicas` copies of this configuration (each `count` GPUs), each holding up
    to `users_per_replica` users at the speed floor and TTFT target; the figures are at the requirement's
    load. Training: one configuration, `meets` when the run finishes by the deadline."""
    meets: bool
    replicas: int
    users_per_replica: int  # the most users one replica serves within the speed floor and TTFT target
    per_user_tps: float  # decode speed each user sees at the requirement's load
    ttft_s: float  # time to first token at that load
    total_tps: float  # output tokens/s of the whole system at that load
    shortfall: str  # why the requirement is missed ("" when met), in units


NOT_SIZED = Sizing(False, 0, 0, 0.0, 0.0, 0.0, "does not fit in GPU memory")


class Basis:
    """One configuration's row of a build shared by requests that differ only in budget (_shared_build): every
    field of its candidates' facts but those a budget changes (rulelang/vocabulary.py PER_BUDGET) is the same in all
    of them. Later stages keep what they derive from those fields in `kept` (the engine's class items and
    firings, verdict texts), each under a key of its own: it lives, and goes, with the shared build, so a sweep's
    memory stays bounded by BUILD_LIMIT.

    `template`: the candidate an earlier request of the build made of this row. A later request's candidate is its
    copy with that request's id, request and economics (at_budget): the other fields are the same objects, and the
    derived figures the template has computed so far (`once`: costs, GPUs, days, per-token costs) read no budget
    (Candidate.BUDGET_FREE lists them; tests/test_speed_paths.py checks each against a fresh candidate's), so the
    copy starts with them instead of computing each again in every request of a ladder. A template and its basis
    refer to each other: a dropped build lets go of its templates (_release)."""

    __slots__ = ("kept", "template")

    def __init__(self) -> None:
        self.kept: dict[Any, Any] = {}
        self.template: Candidate | None = None


@dataclass(frozen=True)
class Candidate:
    # Immutable: its derived figures (`once`) are computed once each; the fact, the ranking and the
    # view each read them several times per candidate.
    id: int
    request: Request
    gpu: Gpu
    count: int
    precision: Precision
    estimate: Estimate
    economics: Economics
    rent: Rent | None
    sizing: Sizing
    tier: int  # quality tier of the precision (0 = best; rules/policy.yaml quality_tiers)
    quality_class: int  # within a tier, its quality class (0 = lossless in practice; rules/policy.yaml)
    min_count: int  # fewest of this GPU that fit at this precision (0: none)
    lightest_precision: str  # the best-quality usual precision that fits these cards ("none")
    nodes: int = 1  # scale-up domains the whole system spans (8-GPU servers, NVL72 racks); >1 needs a fabric
    # What this configuration's candidates share in every request that differs from this one only in budget
    # (Basis), or None.
    basis: Basis | None = field(default=None, compare=False, repr=False)
    # The derived figures (`once`) below: none reads the budget (the request's, or the economics' budget ratio and
    # shortfall), so a later request of a shared build copies those its row's template has computed (_again).
    # Every `once` of the class must be listed here, and equal a fresh candidate's in a ladder (tested).
    BUDGET_FREE: ClassVar[frozenset[str]] = frozenset({
        "gpus", "capex", "tco", "decode_tps", "prefill_tps", "train_tps", "train_days", "train_days_slow",
        "late_at_slow_end", "energy_per_million_tokens", "cost_per_million_tokens", "run_cost"})

    @property
    def label(self) -> str:
        return f"{self.count} x {self.gpu.id} @ {self.precision.id}"

    @once
    def gpus(self) -> int:
        """GPUs in the whole system: the configuration times its replicas."""
        return self.count * max(self.sizing.replicas, 1)

    @property
    def system_label(self) -> str:
        r = self.sizing.replicas
        return self.label if r <= 1 else f"{r} x ({self.count} x {self.gpu.id}) @ {self.precision.id}"

    @property
    def link(self) -> Link:
        return self.estimate.link

    @once
    def capex(self) -> float:
        return self.economics.capex

    @once
    def tco(self) -> float:
        return self.economics.tco

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    @once
    def decode_tps(self) -> float:
        return finite(self.estimate.throughput["decode_tokens_per_s"])

    @once
    def prefill_tps(self) -> float:
        return finite(self.estimate.throughput["prefill_tokens_per_s"])

    @once
    def train_tps(self) -> float:
        return finite(self.estimate.throughput["train_tokens_per_s"])

    @once
    def train_days(self) -> float:
        """Days to process the request's tokens (0 for workloads that do not train; NEVER if it cannot)."""
        if not WORKLOADS[self.request.workload].trains:
            return 0.0
        return _train_days(self.request, self.estimate)

    @once
    def train_days_slow(self) -> float:
        """Days at the low end of the training-speed range (validation residuals per kind and GPU family,
        estimate/ranges): what the schedule is if the run goes as the slowest comparable published runs did."""
        days = self.train_days
        rng = self.estimate.ranges.get("train_tokens_per_s") or {}
        low, mid = rng.get("low"), rng.get("expected")
        if not days or days >= NEVER or not low or not mid:
            return days
        return days * mid / low

    @once
    def late_at_slow_end(self) -> bool:
        """A run with a deadline the user stated, met only if it goes at the expected speed, not the slow end."""
        r = self.request
        return WORKLOADS[r.workload].trains and r.deadline_given and self.train_days_slow > r.deadline_days

    @once
    def energy_per_million_tokens(self) -> float:
        """Electricity per million tokens at the load sized for (not at batch 1)."""
        if WORKLOADS[self.request.workload].trains:
            return finite(self.estimate.power["energy_cost_per_million_tokens"])
        tps = self.sizing.total_tps
        return self.economics.energy_per_year / (self.request.hours_per_day * 365 * 3600 * tps) * 1e6 if tps else 0.0

    @once
    def cost_per_million_tokens(self) -> float:
        """Whole TCO per million output tokens served at the requirement's load over the years of ownership."""
        tps = self.sizing.total_tps
        if WORKLOADS[self.request.workload].trains or not tps:
            return 0.0
        r = self.request
        return self.tco / (tps * 3600 * r.hours_per_day * 365 * r.years) * 1e6

    @once
    def run_cost(self) -> float:
        """Cost of one training run on owned hardware: its energy plus the run's share of the capex over the
        years of ownership (straight-line)."""
        if not WORKLOADS[self.request.workload].trains or self.train_days >= NEVER:
            return 0.0
        days = self.train_days
        share = min(1.0, days / (365 * self.request.years))
        return _run_energy(self.economics, self.request, days) + self.capex * share

    @property
    def cost_per_user(self) -> float:
        users = self.request.users
        return self.tco / users if users else 0.0


def _candidate(**fields: Any) -> Candidate:
    """Candidate(**fields) with every field given: a frozen dataclass's __init__ sets each field through
    object.__setattr__ (2.5 us for a candidate, 0.3 us this way; a request builds hundreds). Nothing else happens
    in its __init__ (no __post_init__); tests/test_speed_paths.py checks the two are equal field for field."""
    c = object.__new__(Candidate)
    c.__dict__.update(fields)
    return c


def _again(template: Candidate, cid: int, req: Request, econ: Economics) -> Candidate:
    """The template's candidate (Basis.template) for another request of its build: its fields and the derived
    figures it has computed, with this request's id, request and economics."""
    c = object.__new__(Candidate)
    d = c.__dict__
    d.update(template.__dict__)
    d["id"], d["request"], d["economics"] = cid, req, econ
    return c


def finite(x: float | None, default: float = 0.0) -> float:
    if x is None or not math.isfinite(x):
        return default
    return float(x)


def gpu_price(cat: Catalog, gpu: Gpu, currency: str) -> tuple[float, str]:
    """Street price per GPU in the request's currency, and where it came from."""
    if currency == "CNY" and gpu.price_cny is not None:
        return gpu.price_cny, f"CNY street price ({gpu.price_date})"
    rate = cat.energy.currencies[currency]
    if currency == "USD":
        return gpu.price_usd, f"USD street price ({gpu.price_date})"
    return gpu.price_usd * rate, (f"USD {gpu.price_usd:,.0f} ({gpu.price_date}) x {rate:g} {currency}/USD "
                                  f"({cat.energy.currency_dates[currency]})")


def counts_for(g: Gpu, req: Request, policy: Policy, price: float | None = None) -> tuple[int, ...]:
    # Clusters of nodes are built from parts with an 8-way (or larger) scale-up fabric: NVLink, Infinity
    # Fabric, Ascend HCCS.
    if WORKLOADS[req.workload].multi_node and has_fabric(g) and g.link_max_gpus >= 8 and g.segment == "datacenter":
        out = list(g.counts)
        # Policy sizes clusters in 8-GPU nodes; a part sold in larger units (a 72-GPU NVL72 rack) takes as many
        # of its units: 2, 4, 8 ... racks, not GPU counts no rack multiple can reach.
        unit = max(g.gpus_per_unit, 8)
        for c in sorted({unit * (n // 8) for n in policy.cluster_counts}):
            if c <= max(g.counts):
                continue
            out.append(c)
            if price is not None and price * c > policy.cluster_budget_multiple * req.budget:
                break  # every larger cluster costs even more: the first one over is enough to explain
        return tuple(out)
    return g.counts


def precisions_for(cat: Catalog, req: Request, policy: Policy) -> list[Precision]:
    ids = policy.auto_precisions(req.workload) if req.precision == "auto" else (req.precision,)
    released = req.model.released_precision
    if req.precision == "auto" and released not in ids and WORKLOADS[req.workload].decodes:
        # A checkpoint published in a 4-bit format (gpt-oss: MXFP4) is weighed as released.
        ids = (*ids, released)
    return [cat.precisions[i] for i in ids if i in cat.precisions]


def quality_of(pol: Policy, req: Request, p: Precision) -> tuple[int, int]:
    """Quality tier and class of running the model at `p`: the checkpoint's own published precision is the
    model as released (tier 0, class 0), whatever its bits; other precisions by bits and quality."""
    if p.id == req.model.released_precision:
        return 0, 0
    return pol.tier_of(p.bits_per_weight), pol.quality_class(p.quality, req.workload)


def build_candidates(cat: Catalog, req: Request, gpus: list[Gpu] | None = None,
                     policy: Policy | None = None) -> list[Candidate]:
    """Estimate every GPU x count x precision the request could use, and size each to the requirement."""
    pol = policy or load_policy()
    memo.refresh()
    pool = gpus if gpus is not None else list(cat.gpus.values())
    precisions = precisions_for(cat, req, pol)
    ids = {p.id for p in precisions}
    pue = cat.energy.pue["datacenter" if req.deployment == "datacenter" else "workstation"]
    # What does not depend on the budget (estimates, sizing, the system's economics at another budget, renting) is
    # shared with the previous requests that differ from this one only in money (_shared_build); None: computed
    # here for this request alone.
    shared = _shared_build(cat, req, pool, pol)
    estimates: dict[tuple[str, int, str], Estimate] = shared["estimates"] if shared else {}
    fits: dict[tuple[str, int, str], Fit] = shared["fits"] if shared else {}
    parts: dict[tuple[str, int, str], tuple] = shared["parts"] if shared else {}
    table: dict[tuple[str, tuple[int, ...]], list[tuple]] = shared["rows"] if shared else {}
    bases: dict[tuple[str, int, str, int], Basis] = shared["bases"] if shared else {}
    systems: dict[tuple, tuple] = shared["systems"] if shared else {}  # economics, rent, nodes
    budgeted: dict[int, Economics] = {}  # this request's copy of each shared Economics, at its budget
    # A build shared for the first time gives its candidates their basis: a signature seen once (most of a random
    # mix) keeps no class items it would never read again.
    again = bool(shared and shared["again"])

    decodes = WORKLOADS[req.workload].decodes

    def config(g: Gpu, n: int, p: Precision, batch: int) -> Config:
        return Config.of(req.model, g, n, p, req.workload, req.context, batch, req.engine if decodes else None, None,
                         req.electricity_per_kwh, req.currency, pue, req.deployment)

    def est_of(g: Gpu, n: int, p: Precision) -> Estimate:
        # Serving fits when the weights and one sequence fit; concurrency is then a matter of sizing.
        key = (g.id, n, p.id)
        got = estimates.get(key)
        if got is None:
            got = estimates[key] = estimate(cat, config(g, n, p, 1 if decodes else req.batch))
        return got

    def fit_of(g: Gpu, n: int, p: Precision) -> Fit | Estimate:
        # Whether it fits, and what sizing reads: for serving, the memory half of the estimate at one sequence (most
        # serving candidates carry the estimate at their load instead); training fits by its plan, the estimate.
        if not decodes:
            return est_of(g, n, p)
        key = (g.id, n, p.id)
        got = fits.get(key)
        if got is None:
            got = fits[key] = serving_fit(cat, config(g, n, p, 1))
        return got

    def weighed(g: Gpu, p: Precision) -> bool:
        # fp16 and bf16 have the same size and speed: `auto` weighs fp16 only where bf16 is missing.
        return not (req.precision == "auto" and p.id == "fp16" and g.bf16 and "bf16" in ids)

    # What "a lighter precision would fit" may suggest: the workload's usual precisions, best quality first,
    # whether or not the user asked for one precision.
    suggestable = sorted((cat.precisions[i] for i in pol.auto_precisions(req.workload) if i in cat.precisions),
                         key=lambda q: (q.quality_rank, -q.bits_per_weight))
    out: list[Candidate] = []
    hours = req.hours_per_day * 365
    quality = {p.id: quality_of(pol, req, p) for p in precisions}
    for g in pool:
        price, note = gpu_price(cat, g, req.currency)
        # Only what can be bought: counts the part is sold in (8-GPU baseboards, 72-GPU racks).
        counts = tuple(c for c in counts_for(g, req, pol, price) if c % max(g.gpus_per_unit, 1) == 0)
        # This GPU's configurations (count, precision, fewest that fit, lightest that fits, the shared part):
        # worked out once per shared build and set of counts (a ladder's budgets cut the cluster sizes).
        rows = table.get((g.id, counts))
        if rows is None:
            rows = table[(g.id, counts)] = []
            fitting: dict[str, list[int]] = {}  # per precision: the counts of this part that hold the model
            for n in counts:
                for p in precisions:
                    if not weighed(g, p):
                        continue
                    fit = fit_of(g, n, p)
                    fitting_counts = fitting.get(p.id)
                    if fitting_counts is None:
                        fitting_counts = fitting[p.id] = [c for c in counts if fit_of(g, c, p).fits]
                    if fit.fits:
                        lightest = p.id
                    else:
                        lightest = next((q.id for q in suggestable if q.id != p.id and fit_of(g, n, q).fits), "none")
                    got = parts.get((g.id, n, p.id))
                    if got is None:
                        sizing = size(cat, req, fit, pol)
                        if not decodes:
                            est = fit
                        elif sizing.meets:
                            # Memory, power and speed figures at the load each replica carries.
                            est = estimate(cat, config(g, n, p, -(-req.users // sizing.replicas)))
                        else:
                            est = est_of(g, n, p)
                        gpus_total = n * max(sizing.replicas, 1)
                        # A system's economics do not depend on its precision or load: power reads the GPU, the
                        # count, the workload, the PUE, the electricity price and the deployment, the platform the
                        # GPU and the count, and the rest is the request's. Computed once per system of this request.
                        system = (g.id, gpus_total, max(sizing.replicas, 1))
                        held = systems.get(system)
                        if held is None:
                            econ = _economics(cat, req, g, est, gpus_total, max(sizing.replicas, 1), price, note,
                                              hours, pol)
                            # Serving rents for the service hours, which read only the system; a run rents for
                            # its days, each configuration's own (below).
                            held = systems[system] = (econ, _rent(cat, req, g, gpus_total, econ, 0.0) if decodes
                                                      else None, nodes_spanned(cat, g, gpus_total))
                        econ, rent, nodes = held
                        if not decodes:
                            # Renting reads what the system costs to own and run, not the budget.
                            rent = _rent(cat, req, g, gpus_total, econ, _train_days(req, est))
                        got = parts[(g.id, n, p.id)] = (est, sizing, econ, rent, nodes)
                    fewest = min(fitting_counts) if fitting_counts else 0
                    # One basis per configuration and fewest count that fits, whatever the other counts weighed.
                    basis = bases.get((g.id, n, p.id, fewest))
                    if basis is None:
                        basis = bases[(g.id, n, p.id, fewest)] = Basis()
                    rows.append((n, p, *quality[p.id], fewest, lightest, got, basis))
        for n, p, tier, qclass, min_count, lightest, got, basis in rows:
            est, sizing, econ, rent, nodes = got
            if econ.budget != req.budget:
                mine = budgeted.get(id(econ))
                if mine is None:
                    mine = budgeted[id(econ)] = econ.at_budget(req.budget)
                econ = mine
            if again and basis.template is not None:
                out.append(_again(basis.template, len(out) + 1, req, econ))
                continue
            c = _candidate(id=len(out) + 1, request=req, gpu=g, count=n, precision=p, estimate=est, economics=econ,
                           rent=rent, sizing=sizing, tier=tier, quality_class=qclass, min_count=min_count,
                           lightest_precision=lightest, nodes=nodes, basis=basis if again else None)
            if again:
                basis.template = c
            out.append(c)
    return out


# Requests that differ only in money (a budget ladder, or a random sweep's neighbours in locality order) share
# what build_candidates works out before the budget comes in: per request signature (every field but the budget
# and the notes that only word it), the estimates, each configuration's sizing, system economics and renting.
# A few signatures are kept, the oldest dropped first: they hold estimates the memo tables may have let go.
_BUILDS: dict[tuple, tuple] = {}
BUILD_LIMIT = 4
_UNWORDED = {"budget": 0.0, "model_note": None, "electricity_note": "", "deployment_note": "", "requirement_note": ""}


def _shared_build(cat: Catalog, req: Request, pool: list[Gpu], pol: Policy) -> dict[str, Any] | None:
    if memo.memo_disabled():
        return None
    sig = (id(cat), id(pol), id(req.model), tuple(map(id, pool)), replace(req, **_UNWORDED))
    hit = _BUILDS.get(sig)
    if hit is not None and hit[0] is cat and hit[1] is pol and hit[2] is req.model and all(
            a is b for a, b in zip(hit[3], pool, strict=True)):
        hit[4]["again"] = True
        return hit[4]
    while len(_BUILDS) >= BUILD_LIMIT:
        _release(_BUILDS.pop(next(iter(_BUILDS)))[4])
    # "again": a later request shares this build (its candidates then carry their basis, see Candidate.basis).
    shared: dict[str, Any] = {"estimates": {}, "fits": {}, "parts": {}, "systems": {}, "rows": {}, "bases": {},
                              "again": False}
    _BUILDS[sig] = (cat, pol, req.model, list(pool), shared)
    return shared


def _release(shared: dict[str, Any]) -> None:
    """A dropped build's rows let go of their templates: a template and its basis refer to each other, and a cycle
    waits for the collector, which a sweep runs rarely (core/gcpolicy.py), while a build without one is freed as it
    is dropped (1,000 random requests, one process: RSS growth 21 MiB without the templates, 64 MiB with them kept
    in cycles)."""
    for basis in shared["bases"].values():
        basis.template = None


def size(cat: Catalog, req: Request, est: Estimate | Fit, policy: Policy) -> Sizing:
    """Size one configuration to the request's requirement (see Sizing). Serving reads only the configuration's
    fit, config and engine (an estimate's or a `serving_fit`'s); training its estimate's speed."""
    if WORKLOADS[req.workload].trains:
        days = _train_days(req, est)
        if not est.fits:
            return NOT_SIZED
        ok = days <= req.deadline_days
        why = "" if ok else (f"{days:,.1f} days to train {req.tokens:,.0f} tokens, over the {req.deadline_days:g}-day "
                             "deadline" if days < NEVER else "cannot train at all")
        return Sizing(ok, 1, 0, 0.0, 0.0, finite(est.throughput["train_tokens_per_s"]), why)
    if not est.fits:
        return NOT_SIZED
    # Serving sizing is a pure function of the configuration's physics and the requirement (the binary search
    # below asks serve() at a dozen loads): kept for the process, like the estimates it reads.
    return memo.SERVING.get(cat, est.config, ("size", req.users, req.prompt_tokens, req.output_tokens, req.context,
                                              req.min_tokens_per_s, req.ttft_s, policy.max_replicas, est.engine),
                            lambda: _size_serving(cat, req, est, policy))


def _size_serving(cat: Catalog, req: Request, est: Estimate | Fit, policy: Policy) -> Sizing:
    cfg = est.config
    users = req.users
    load = _replica_load(cat, req, est)
    if isinstance(load, Sizing):
        return load  # one user alone misses the floor or the target: no number of replicas helps
    per_replica = load
    replicas = -(-users // per_replica)
    if replicas > policy.max_replicas:
        return Sizing(False, replicas, per_replica, 0.0, 0.0, 0.0,
                      f"needs {replicas:,} replicas of {cfg.count} GPU(s) for {users:,} users, more than the "
                      f"{policy.max_replicas} this tool sizes")
    _, at = load_curve(cat, cfg, req.prompt_tokens, req.output_tokens, req.context)
    total, per_user, first = at(-(-users // replicas))
    return Sizing(True, replicas, per_replica, per_user, first, total * replicas, "")


def _replica_load(cat: Catalog, req: Request, est: Estimate | Fit) -> int | Sizing:
    """The most users one replica holds within the speed floor and the TTFT target, or the Sizing that says one
    user alone misses them. It does not read the number of users, so requests that differ only in that (a sweep's
    1, 4 and 16 users) share its binary search over a dozen loads: kept for the process, like the sizing."""
    return memo.SERVING.get(cat, est.config, ("replica", req.prompt_tokens, req.output_tokens, req.context,
                                              req.min_tokens_per_s, req.ttft_s, est.engine),
                            lambda: _search_replica_load(cat, req, est))


def _search_replica_load(cat: Catalog, req: Request, est: Estimate | Fit) -> int | Sizing:
    cfg = est.config
    p, floor, ttft = req.prompt_tokens, req.min_tokens_per_s, req.ttft_s
    # serve()'s figures at each load (total tokens/s, per user, TTFT), without a Serving object per load.
    fitting, at = load_curve(cat, cfg, p, req.output_tokens, req.context)

    def ok(u: int) -> bool:
        sv = at(u)
        return sv[1] >= floor and sv[2] <= ttft

    one = at(1)
    if not (one[1] >= floor and one[2] <= ttft):
        if one[1] < floor:
            why = f"one user gets {one[1]:,.1f} tokens/s, below the {floor:g} tokens/s floor"
        else:
            why = f"the first token takes {one[2]:,.2f} s for a {p:,}-token prompt, over the {ttft:g} s target"
        return Sizing(False, 0, 0, one[1], one[2], 0.0, why)
    # Per-user speed falls and TTFT grows with load, so the set of good loads is an interval from 1.
    lo, hi = 1, max(1, min(fitting, int(engine_info(cat, est.engine).get("max_batch", 256))))
    if ok(hi):
        lo = hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _run_energy(econ: Economics, req: Request, days: float) -> float:
    """Electricity of one training run: it keeps the GPUs busy around the clock (energy per hour of use x 24 x
    days), whatever the hours per day the ownership TCO assumes."""
    return econ.energy_per_year / (365 * max(req.hours_per_day, 1e-9)) * 24 * days


def _train_days(req: Request, est: Estimate) -> float:
    """Wall-clock days for the requested tokens: steady-state rate times the plan's goodput (the share of time
    not lost to failures, restarts and checkpoint reloads at that GPU count)."""
    rate = finite(est.throughput["train_tokens_per_s"])
    goodput = est.plan.goodput if est.plan is not None else 1.0
    return (req.tokens or 0.0) / (rate * goodput) / 86400 if rate else NEVER


def platform_cost(cat: Catalog, req: Request, g: Gpu, gpus: int,
                  policy: Policy | None = None) -> tuple[float, str, float]:
    """USD of what `gpus` of this part must be built into, what that is, and its host memory per node (GiB; what
    optimizer offload can use) (facts/platforms.yaml)."""
    pol = policy or load_policy()
    plat = cat.platforms["platforms"]
    per_node = int(plat["baseboard-server"]["max_gpus"])
    # The cluster network joins scale-up domains: 8-GPU servers, or whole NVL72 racks (one NVLink domain).
    nodes = nodes_spanned(cat, g, gpus)
    servers = -(-gpus // per_node)
    # The fabric is priced per 8-GPU node (one 400G NIC per GPU and its switch ports), so a rack-scale
    # domain pays for its GPUs' NICs too once there are several domains to join.
    net = plat["cluster-network-per-node"]["price_usd"] * servers if nodes > 1 else 0.0
    net_note = f" + cluster network joining {nodes} nodes ({gpus} GPUs)" if nodes > 1 else ""
    if g.form_factor == "system" or g.sold_in in ("system", "rack"):
        return net, "a complete system (host included in the price)" + net_note, g.memory_gib
    server_ram = float(plat["baseboard-server"]["host_memory_gib"])
    if g.price_condition == "system-share":
        return net, "the price is a share of an 8-GPU server, host included" + net_note, server_ram
    if g.form_factor in ("sxm", "oam"):
        unit = plat["baseboard-server"]["price_usd"]
        return (unit * servers + net, f"{servers} x 8-GPU baseboard server without modules ({unit:,.0f} USD each)"
                + net_note, server_ram)
    if req.deployment == "workstation":
        gpu_w = g.board_power_w * gpus
        feeds = pol.existing_host_max_gpu_w
        desk = plat["desktop"]
        if gpus <= pol.existing_host_max_cards and gpu_w <= pol.existing_host_max_psu_gpu_w:
            existing = float(desk["existing_host_memory_gib"])
            if gpu_w <= feeds:
                return 0.0, (f"in your existing desktop (policy: {pol.existing_host_max_cards} card(s) or fewer and at "
                             f"most {feeds:,.0f} W of GPU board power; a new one is about "
                             f"{desk['price_usd']:,.0f} USD)"), existing
            # The desktop takes the cards but its supply does not feed them: a bigger power supply is priced.
            return float(desk["psu_upgrade_usd"]), (
                f"in your existing desktop with a new power supply ({desk['psu_upgrade_usd']:,.0f} USD): "
                f"{gpu_w:,.0f} W of GPU board power is more than the {feeds:,.0f} W an ordinary desktop's supply "
                "feeds (policy desk_side.existing_host_max_gpu_w)"), existing
        kind = "desktop" if gpus <= desk["max_gpus"] else "hedt"
        hosts = -(-gpus // int(plat[kind]["max_gpus"]))
        label = {"desktop": "desktop host", "hedt": "HEDT workstation host"}[kind]
        why = (f": {gpu_w:,.0f} W of GPU board power needs its own circuit and a case and board built for it, more "
               f"than an existing desktop takes (policy desk_side.existing_host_max_psu_gpu_w "
               f"{pol.existing_host_max_psu_gpu_w:,.0f} W)" if gpus <= pol.existing_host_max_cards else "")
        return (plat[kind]["price_usd"] * hosts, f"{hosts} x {label} ({plat[kind]['price_usd']:,.0f} USD){why}",
                float(plat[kind]["host_memory_gib"]))
    # The smallest server that takes the cards; beyond eight, several 8-slot servers.
    kind = next((k for k in ("pcie-server-2", "pcie-server-4") if gpus <= plat[k]["max_gpus"]), "pcie-server")
    servers = -(-gpus // int(plat[kind]["max_gpus"]))
    return (plat[kind]["price_usd"] * servers + net,
            f"{servers} x {plat[kind]['max_gpus']}-GPU PCIe server ({plat[kind]['price_usd']:,.0f} USD)" + net_note,
            float(plat[kind]["host_memory_gib"]))


def _economics(cat: Catalog, req: Request, g: Gpu, est: Estimate, gpus: int, replicas: int, price: float,
               note: str, hours: float, policy: Policy) -> Economics:
    rate = cat.energy.currencies[req.currency]
    platform_usd, platform_note, host_gib = platform_cost(cat, req, g, gpus, policy)
    # The whole system's draw: every replica's GPUs plus the host(s) they share (estimate/power.py).
    sys_power = power(cat, est.config, None, None, replicas)
    energy_year = sys_power["energy_cost_per_hour"] * hours
    hosting_year = 0.0
    if req.deployment == "datacenter":
        host = cat.platforms["hosting"]
        # Colocation is charged on the IT load the rack must be provisioned for: the GPUs' board power and the
        # rated power of the host around them (facts/platforms.yaml host_power_w).
        kw = (sys_power["board_power_w"] + sys_power["host_power_w"]) / 1000
        hosting_year = kw * 12 * host["colocation_usd_per_kw_month"]["value"] * rate
    return Economics(price, note, price * gpus, platform_usd * rate, platform_note, energy_year,
                     energy_year * req.years, hosting_year, req.budget, req.years, host_gib,
                     watts=sys_power["watts"], host_watts=sys_power["host_watts"])


def _rent(cat: Catalog, req: Request, g: Gpu, n: int, econ: Economics, days: float) -> Rent | None:
    """Renting for the real usage: the run (training) or the service hours (serving), and the break-even."""
    if not g.rent_usd_per_hour:
        return None
    per_hour = g.rent_usd_per_hour * cat.energy.currencies[req.currency] * n
    cur = req.currency
    if WORKLOADS[req.workload].trains:
        if days >= NEVER:
            return None
        setup = cat.platforms["rent"]["run_setup_fraction"]["value"]
        run_hours = days * 24 * (1 + setup)
        total = per_hour * run_hours
        # Buying for this one run: the system plus the run's energy (the hardware is then owned).
        run_energy = _run_energy(econ, req, days)
        buy = econ.capex + run_energy
        runs = econ.capex / (total - run_energy) if total > run_energy else float("inf")
        even = (f"buying pays after {runs:,.1f} runs like this one" if runs != float("inf")
                else "renting stays cheaper at any number of runs")
        basis = (f"{days:,.1f} days of training + {setup:.0%} setup = {run_hours:,.0f} h at {per_hour:,.2f} {cur}/h "
                 f"for {n} GPU(s)")
        return Rent(per_hour, total, total / buy if buy else 0.0, basis, even)
    total = per_hour * req.hours_per_day * 365 * req.years
    monthly_rent = per_hour * req.hours_per_day * 365 / 12
    monthly_own = (econ.energy_per_year + econ.hosting_per_year) / 12
    if monthly_rent > monthly_own:
        months = econ.capex / (monthly_rent - monthly_own)
        even = f"buying pays after {months:,.1f} months at {req.hours_per_day:g} h/day"
    else:
        even = "renting stays cheaper at this duty cycle"
    basis = f"{req.hours_per_day:g} h/day for {req.years:g} years at {per_hour:,.2f} {cur}/h for {n} GPU(s)"
    return Rent(per_hour, total, total / econ.tco if econ.tco else 0.0, basis, even)
