"""Stage 4: candidate configurations (GPU x count x precision), each a typed record.

The estimator says what a configuration does; a candidate adds what it costs and what it offers the
request (economics, serving capacity, days to train, the smallest count that fits). Ranking and the
view model read these records; the rule engine's fact is built from them in one place
(rulelang/facts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import Catalog, Gpu, Precision
from .core.workloads import WORKLOADS
from .estimate import Config, Estimate, Link, decode_rate, estimate
from .request import Request

# Precisions the expert weighs when the user says `auto`, per workload.
AUTO_PRECISIONS = {
    "dev": ("bf16", "fp16", "fp8", "int8", "int4", "q8_0", "q4_k_m"),
    "inference": ("bf16", "fp16", "fp8", "int8", "int4", "q8_0", "q4_k_m"),
    "lora": ("bf16", "fp16"),
    "qlora": ("nf4",),
    "finetune": ("bf16", "fp16"),
    "training": ("bf16", "fp16", "fp8"),
}

# Serving capacity is measured at the largest concurrency that fits, up to this many sequences
# (vLLM's default max_num_seqs is 256; 64 keeps per-user speed interactive), and llama.cpp's
# server is run with a handful of parallel slots.
CAPACITY_MAX_BATCH = {"vllm": 64, "llama.cpp": 8}

# Pre-training and full fine-tuning may span several 8-GPU nodes: HGX-class parts are also weighed in
# clusters of these sizes (inference candidates stay within one node).
CLUSTER_COUNTS = tuple(2**k for k in range(4, 15))  # 16 ... 16,384 GPUs (Llama 3 405B: 16K H100)

NEVER = 1e15  # stands in for "never" (e.g. training days of a configuration that cannot run)


@dataclass(frozen=True)
class Economics:
    price_each: float  # per GPU, request currency
    price_note: str  # where the price came from
    capex: float
    energy_per_year: float
    energy_total: float  # over the request's years
    budget: float

    @property
    def tco(self) -> float:
        """Capex plus energy over the request's years."""
        return self.capex + self.energy_total

    @property
    def budget_ratio(self) -> float:
        return self.capex / self.budget

    @property
    def energy_share(self) -> float:
        return self.energy_total / self.tco if self.tco else 0.0

    @property
    def shortfall(self) -> float:
        return max(0.0, self.capex - self.budget)


@dataclass(frozen=True)
class Rent:
    """Renting the same GPUs in the cloud for the same hours and years (cloud prices include power and
    hosting; the purchase TCO does not include a host system)."""
    per_hour: float
    total: float
    vs_tco: float


@dataclass(frozen=True)
class Capacity:
    """Serving capacity: aggregate decode tokens/s at the largest concurrency that fits."""
    batch: int
    tokens_per_s: float


@dataclass(frozen=True)
class Candidate:
    id: int
    request: Request
    gpu: Gpu
    count: int
    precision: Precision
    estimate: Estimate
    economics: Economics
    rent: Rent | None
    capacity: Capacity
    min_count: int  # fewest of this GPU that fit at this precision (0: none)
    lightest_precision: str  # the best-quality usual precision that fits these cards ("none")

    @property
    def label(self) -> str:
        return f"{self.count} x {self.gpu.id} @ {self.precision.id}"

    @property
    def link(self) -> Link:
        return self.estimate.link

    @property
    def capex(self) -> float:
        return self.economics.capex

    @property
    def tco(self) -> float:
        return self.economics.tco

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    @property
    def decode_tps(self) -> float:
        return finite(self.estimate.throughput["decode_tokens_per_s"])

    @property
    def prefill_tps(self) -> float:
        return finite(self.estimate.throughput["prefill_tokens_per_s"])

    @property
    def train_tps(self) -> float:
        return finite(self.estimate.throughput["train_tokens_per_s"])

    @property
    def train_days(self) -> float:
        """Days to process the request's tokens (0 for workloads that do not train; NEVER if it cannot)."""
        if not WORKLOADS[self.request.workload].trains:
            return 0.0
        rate = self.train_tps
        return (self.request.tokens or 0.0) / rate / 86400 if rate else NEVER

    @property
    def energy_per_million_tokens(self) -> float:
        return finite(self.estimate.power["energy_cost_per_million_tokens"])


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


def counts_for(g: Gpu, req: Request) -> tuple[int, ...]:
    if WORKLOADS[req.workload].multi_node and g.nvlink_max_gpus >= 8 and g.segment == "datacenter":
        return g.counts + tuple(c for c in CLUSTER_COUNTS if c > max(g.counts))
    return g.counts


def precisions_for(cat: Catalog, req: Request) -> list[Precision]:
    ids = AUTO_PRECISIONS[req.workload] if req.precision == "auto" else (req.precision,)
    return [cat.precisions[i] for i in ids if i in cat.precisions]


def build_candidates(cat: Catalog, req: Request, gpus: list[Gpu] | None = None) -> list[Candidate]:
    """Estimate every GPU x count x precision the request could use."""
    pool = gpus if gpus is not None else list(cat.gpus.values())
    precisions = precisions_for(cat, req)
    ids = {p.id for p in precisions}
    pue = cat.energy.pue["datacenter" if req.deployment == "datacenter" else "workstation"]
    estimates: dict[tuple[str, int, str], Estimate] = {}

    def est_of(g: Gpu, n: int, p: Precision) -> Estimate:
        key = (g.id, n, p.id)
        if key not in estimates:
            estimates[key] = estimate(cat, Config(
                model=req.model, gpu=g, count=n, precision=p, workload=req.workload, context=req.context,
                batch=req.batch, electricity_per_kwh=req.electricity_per_kwh, currency=req.currency, pue=pue))
        return estimates[key]

    def weighed(g: Gpu, p: Precision) -> bool:
        # fp16 and bf16 have the same size and speed: `auto` weighs fp16 only where bf16 is missing.
        return not (req.precision == "auto" and p.id == "fp16" and g.bf16 and "bf16" in ids)

    # What "a lighter precision would fit" may suggest: the workload's usual precisions, best quality first,
    # whether or not the user asked for one precision.
    suggestable = sorted((cat.precisions[i] for i in AUTO_PRECISIONS[req.workload] if i in cat.precisions),
                         key=lambda q: (q.quality_rank, -q.bits_per_weight))
    out: list[Candidate] = []
    hours = req.hours_per_day * 365
    for g in pool:
        price, note = gpu_price(cat, g, req.currency)
        counts = counts_for(g, req)
        for n in counts:
            for p in precisions:
                if not weighed(g, p):
                    continue
                est = est_of(g, n, p)
                fitting_counts = [c for c in counts if est_of(g, c, p).fits]
                if est.fits:
                    lightest = p.id
                else:
                    lightest = next((q.id for q in suggestable if q.id != p.id and est_of(g, n, q).fits), "none")
                capex = price * n
                energy_year = est.power["energy_cost_per_hour"] * hours
                econ = Economics(price, note, capex, energy_year, energy_year * req.years, req.budget)
                out.append(Candidate(
                    id=len(out) + 1, request=req, gpu=g, count=n, precision=p, estimate=est, economics=econ,
                    rent=_rent(cat, req, g, n, econ.tco), capacity=_capacity(cat, req, est),
                    min_count=min(fitting_counts) if fitting_counts else 0, lightest_precision=lightest))
    return out


def _capacity(cat: Catalog, req: Request, est: Estimate) -> Capacity:
    """Aggregate decode tokens/s at the largest concurrency whose KV caches fit next to the weights."""
    if WORKLOADS[req.workload].trains or not est.fits:
        return Capacity(0, 0.0)
    mem = est.memory_gib
    per_seq = mem["kv_cache"] / req.batch
    free = mem["headroom_per_gpu"] * est.config.count
    extra = int(free // per_seq) if per_seq > 0 else 0
    limit = CAPACITY_MAX_BATCH.get(est.engine, 64)
    batch = max(req.batch, min(limit, req.batch + extra))
    if batch == req.batch:
        return Capacity(batch, finite(est.throughput["decode_tokens_per_s"]))
    return Capacity(batch, finite(decode_rate(cat, est, batch)))


def _rent(cat: Catalog, req: Request, g: Gpu, n: int, tco: float) -> Rent | None:
    if not g.rent_usd_per_hour:
        return None
    per_hour = g.rent_usd_per_hour * cat.energy.currencies[req.currency] * n
    total = per_hour * req.hours_per_day * 365 * req.years
    return Rent(per_hour, total, total / tco if tco else 0.0)
