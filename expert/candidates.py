"""Candidate configurations (GPU x count x precision) and the facts the rules read about each.

A candidate fact is flat within a few groups (`gpu`, `precision`, `model`, `memory`, `fit`, `perf`,
`power`, `cost`, `req`): every rule condition reads fields of this one fact, so no rule ever needs a
cross-fact join (durable_rules' unsafe area, see docs/durable-rules.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog, Gpu, Precision
from .estimator import TRAINING_WORKLOADS, Config, Estimate, decode_rate, estimate
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

# Every field a rule may read, with its type: the rule compiler rejects any other path.
FACT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "id": int,
    "gpu.id": str, "gpu.vendor": str, "gpu.segment": str, "gpu.architecture": str, "gpu.stack": str,
    "gpu.memory_gib": float, "gpu.bandwidth_gbs": float, "gpu.board_power_w": float, "gpu.bf16": bool,
    "gpu.fp8": bool, "gpu.flash_attention": int, "gpu.datacenter_licence": bool, "gpu.nvlink": bool,
    "gpu.nvlink_gbs": float, "gpu.nvlink_max_gpus": int, "gpu.p2p": bool, "gpu.ecc": bool, "gpu.slots": int,
    "gpu.form_factor": str, "gpu.cooling": str, "gpu.vllm": bool, "gpu.tensorrt_llm": bool,
    "gpu.llama_cpp": bool, "gpu.export_restricted_china": bool, "gpu.price_condition": str,
    "gpu.launch_year": int, "gpu.china_only": bool, "build.slots_needed": int,
    "count": int,
    "precision.id": str, "precision.kind": str, "precision.bits": float, "precision.compute": str,
    "precision.quality": str, "precision.quality_rank": int, "precision.needs_bf16": bool,
    "precision.needs_fp8": bool, "precision.trainable": bool, "precision.gguf": bool, "precision.vllm": bool,
    "model.id": str, "model.family": str, "model.params_b": float, "model.layers": int, "model.kv_heads": int,
    "model.attention_heads": int, "model.max_context": int, "model.moe": bool,
    "engine": str, "parallelism": str,
    "memory.weights_gib": float, "memory.kv_cache_gib": float, "memory.activations_gib": float,
    "memory.training_state_gib": float, "memory.total_gib": float, "memory.per_gpu_gib": float,
    "memory.available_gib": float, "memory.headroom_gib": float, "memory.headroom_fraction": float,
    "memory.fits": bool, "memory.kv_fraction": float,
    "fit.min_count": int, "fit.lightest_precision": str, "fit.any_count_fits": bool,
    "perf.decode_tps": float, "perf.prefill_tps": float, "perf.train_tps": float,
    "perf.decode_tps_per_seq": float, "perf.train_days": float, "perf.link": str,
    "perf.capacity_batch": int, "perf.capacity_tps": float,
    "power.watts": float, "power.total_board_w": float, "power.energy_cost_per_year": float,
    "power.per_million_tokens": float, "power.per_million_tokens_usd": float,
    "cost.capex": float, "cost.tco": float, "cost.budget_ratio": float, "cost.energy_share": float,
    "cost.shortfall": float, "cost.rent_total": float, "cost.rent_vs_tco": float,
    "cost.rent_per_hour": float,
    "req.workload": str, "req.region": str, "req.deployment": str, "req.budget": float, "req.context": int,
    "req.batch": int, "req.hours_per_day": float, "req.years": float, "req.training": bool,
    "req.tokens": float, "req.currency": str, "req.serving": bool,
}

_BIG = 1e15  # stands in for "never" (e.g. training days of a configuration that cannot run)


@dataclass
class Candidate:
    id: int
    gpu: Gpu
    count: int
    precision: Precision
    estimate: Estimate
    capex: float
    energy_per_year: float
    tco: float
    fact: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.count} x {self.gpu.id} @ {self.precision.id}"


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
    if req.workload in ("training", "finetune") and g.nvlink_max_gpus >= 8 and g.segment == "datacenter":
        return g.counts + tuple(c for c in CLUSTER_COUNTS if c > max(g.counts))
    return g.counts


def precisions_for(cat: Catalog, req: Request) -> list[Precision]:
    ids = AUTO_PRECISIONS[req.workload] if req.precision == "auto" else (req.precision,)
    return [cat.precisions[i] for i in ids if i in cat.precisions]


def _finite(x: float | None, default: float = 0.0) -> float:
    if x is None or not math.isfinite(x):
        return default
    return float(x)


def build_candidates(cat: Catalog, req: Request, gpus: list[Gpu] | None = None) -> list[Candidate]:
    """Estimate every GPU x count x precision the request could use and turn each into a rule fact."""
    pool = gpus if gpus is not None else list(cat.gpus.values())
    precisions = precisions_for(cat, req)
    ids = {p.id for p in precisions}
    pue = cat.energy.pue["datacenter" if req.deployment == "datacenter" else "workstation"]
    training = req.workload in TRAINING_WORKLOADS
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
        price, _ = gpu_price(cat, g, req.currency)
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
                tco = capex + energy_year * req.years
                cid = len(out) + 1
                cap_batch, cap_tps = _capacity(cat, req, est)
                fact = _fact(cat, req, g, n, p, est, cid, capex, energy_year, tco, training,
                             min(fitting_counts) if fitting_counts else 0, lightest, cap_batch, cap_tps)
                out.append(Candidate(cid, g, n, p, est, capex, energy_year, tco, fact))
    return out


def _capacity(cat: Catalog, req: Request, est: Estimate) -> tuple[int, float]:
    """Aggregate decode tokens/s at the largest concurrency whose KV caches fit next to the weights."""
    if req.workload in TRAINING_WORKLOADS or not est.fits:
        return 0, 0.0
    mem = est.memory_gib
    per_seq = mem["kv_cache"] / req.batch
    free = mem["headroom_per_gpu"] * est.config.count
    extra = int(free // per_seq) if per_seq > 0 else 0
    limit = CAPACITY_MAX_BATCH.get(est.engine, 64)
    batch = max(req.batch, min(limit, req.batch + extra))
    if batch == req.batch:
        return batch, _finite(est.throughput["decode_tokens_per_s"])
    return batch, _finite(decode_rate(cat, est, batch))


def _rent(cat: Catalog, req: Request, g: Gpu, n: int, tco: float) -> dict[str, float]:
    """Renting the same GPUs in the cloud for the same hours and years (0 where no price is sourced).
    Cloud prices include power and hosting; the purchase TCO does not include a host system."""
    if not g.rent_usd_per_hour:
        return {"rent_per_hour": 0.0, "rent_total": 0.0, "rent_vs_tco": 0.0}
    per_hour = g.rent_usd_per_hour * cat.energy.currencies[req.currency] * n
    total = per_hour * req.hours_per_day * 365 * req.years
    return {"rent_per_hour": per_hour, "rent_total": total, "rent_vs_tco": total / tco if tco else 0.0}


def _fact(cat: Catalog, req: Request, g: Gpu, n: int, p: Precision, est: Estimate, cid: int, capex: float,
          energy_year: float, tco: float, training: bool, min_count: int, lightest: str, cap_batch: int,
          cap_tps: float) -> dict[str, Any]:
    mem = est.memory_gib
    thr = est.throughput
    decode = _finite(thr["decode_tokens_per_s"])
    train = _finite(thr["train_tokens_per_s"])
    rate = train if training else decode
    tokens = req.tokens or 0.0
    per_million = est.power["energy_cost_per_million_tokens"]
    link = "none" if n == 1 else ("nvlink" if g.nvlink and n <= max(g.nvlink_max_gpus, 1) else
                                  ("pcie-p2p" if g.p2p else "pcie-host"))
    return {
        "kind": "candidate",
        "id": cid,
        "gpu": {
            "id": g.id, "vendor": g.vendor, "segment": g.segment, "architecture": g.architecture,
            "stack": g.stack, "memory_gib": g.memory_gib, "bandwidth_gbs": g.bandwidth_gbs,
            "board_power_w": g.board_power_w, "bf16": g.bf16, "fp8": g.fp8, "flash_attention": g.flash_attention,
            "datacenter_licence": g.datacenter_licence, "nvlink": g.nvlink, "nvlink_gbs": g.nvlink_gbs,
            "nvlink_max_gpus": g.nvlink_max_gpus, "p2p": g.p2p, "ecc": g.ecc, "slots": g.slots,
            "form_factor": g.form_factor, "cooling": g.cooling, "vllm": g.vllm, "tensorrt_llm": g.tensorrt_llm,
            "llama_cpp": g.llama_cpp, "export_restricted_china": "china" in g.export_restricted,
            "price_condition": g.price_condition, "launch_year": int(str(g.launch_date)[:4]),
            "china_only": g.china_only,
        },
        "build": {"slots_needed": g.slots * n},
        "count": n,
        "precision": {
            "id": p.id, "kind": p.kind, "bits": p.bits_per_weight, "compute": p.compute, "quality": p.quality,
            "quality_rank": p.quality_rank, "needs_bf16": "bf16" in p.requires, "needs_fp8": "fp8" in p.requires,
            "trainable": p.trainable, "gguf": p.kind == "gguf", "vllm": "vllm" in p.engines,
        },
        "model": {
            "id": req.model.id, "family": req.model.family, "params_b": req.model.params / 1e9,
            "layers": req.model.layers, "kv_heads": req.model.kv_heads,
            "attention_heads": req.model.attention_heads, "max_context": req.model.max_context,
            "moe": bool(req.model.experts),
        },
        "engine": est.engine,
        "parallelism": est.parallelism,
        "memory": {
            "weights_gib": mem["weights"], "kv_cache_gib": mem["kv_cache"], "activations_gib": mem["activations"],
            "training_state_gib": mem["gradients"] + mem["optimizer"], "total_gib": mem["total"],
            "per_gpu_gib": mem["per_gpu"], "available_gib": mem["available_per_gpu"],
            "headroom_gib": mem["headroom_per_gpu"],
            "headroom_fraction": mem["headroom_per_gpu"] / mem["available_per_gpu"],
            "fits": est.fits, "kv_fraction": mem["kv_cache"] / mem["total"] if mem["total"] else 0.0,
        },
        "fit": {"min_count": min_count, "lightest_precision": lightest, "any_count_fits": min_count > 0},
        "perf": {
            "decode_tps": decode, "prefill_tps": _finite(thr["prefill_tokens_per_s"]), "train_tps": train,
            "decode_tps_per_seq": decode / req.batch if decode else 0.0,
            "train_days": tokens / rate / 86400 if (training and rate) else (_BIG if training else 0.0),
            "link": link, "capacity_batch": cap_batch, "capacity_tps": cap_tps,
        },
        "power": {
            "watts": est.power["watts"], "total_board_w": est.power["board_power_w"],
            "energy_cost_per_year": energy_year, "per_million_tokens": _finite(per_million),
            "per_million_tokens_usd": _finite(per_million) / cat.energy.currencies[req.currency],
        },
        "cost": {
            "capex": capex, "tco": tco, "budget_ratio": capex / req.budget,
            "energy_share": (energy_year * req.years) / tco if tco else 0.0,
            "shortfall": max(0.0, capex - req.budget),
            **_rent(cat, req, g, n, tco),
        },
        "req": {
            "workload": req.workload, "region": req.region, "deployment": req.deployment, "budget": req.budget,
            "context": req.context, "batch": req.batch, "hours_per_day": req.hours_per_day, "years": req.years,
            "training": training, "tokens": tokens, "currency": req.currency,
            "serving": req.workload == "inference",
        },
    }


def get_path(fact: dict[str, Any], path: str) -> Any:
    cur: Any = fact
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur
