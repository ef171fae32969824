"""The engine's fact for a candidate: built here and only here, from the typed candidate record.

A fact is flat within a few groups (`gpu`, `precision`, `model`, `memory`, `fit`, `perf`, `power`,
`cost`, `req`): every rule condition reads fields of this one fact, so no rule ever needs a
cross-fact join (durable_rules' unsafe area, see shared/durable-rules.md). Its fields are exactly
vocabulary.FACT_FIELDS (tests/test_rulelang.py checks names and types)."""

from __future__ import annotations

from typing import Any

from ..candidates import Candidate
from ..catalog import Catalog
from ..core.workloads import WORKLOADS


def candidate_fact(cat: Catalog, c: Candidate) -> dict[str, Any]:
    req, g, p, n, est = c.request, c.gpu, c.precision, c.count, c.estimate
    mem = est.memory_gib
    wl = WORKLOADS[req.workload]
    decode = c.decode_tps
    per_million = c.energy_per_million_tokens
    e = c.economics
    sz = c.sizing
    return {
        "kind": "candidate",
        "id": c.id,
        "gpu": _once(g, lambda: {
            "id": g.id, "vendor": g.vendor, "segment": g.segment, "architecture": g.architecture,
            "stack": g.stack, "memory_gib": g.memory_gib, "bandwidth_gbs": g.bandwidth_gbs,
            "board_power_w": g.board_power_w, "bf16": g.bf16, "fp8": g.fp8, "flash_attention": g.flash_attention,
            "datacenter_licence": g.datacenter_licence, "nvlink": g.nvlink, "nvlink_gbs": g.nvlink_gbs,
            "nvlink_max_gpus": g.nvlink_max_gpus, "p2p": g.p2p, "ecc": g.ecc, "slots": g.slots,
            "form_factor": g.form_factor, "cooling": g.cooling, "vllm": g.vllm, "tensorrt_llm": g.tensorrt_llm,
            "llama_cpp": g.llama_cpp, "export_restricted_china": "china" in g.export_restricted,
            "price_condition": g.price_condition, "launch_year": int(str(g.launch_date)[:4]),
            "china_only": g.china_only, "availability": g.availability,
            "availability_date": str(g.availability_date),
        }),
        "build": {"slots_needed": g.slots * c.gpus, "stack_allowed": g.stack in req.stacks,
                  "host_memory_gib": e.host_memory_gib},
        "count": n,
        "system": {"gpus": c.gpus, "replicas": c.sizing.replicas, "nodes": c.nodes},
        "serving": {
            "meets": sz.meets, "users_per_replica": sz.users_per_replica, "per_user_tps": sz.per_user_tps,
            "ttft_s": sz.ttft_s, "total_tps": sz.total_tps, "shortfall": sz.shortfall,
        },
        "precision": _once(p, lambda: {
            "id": p.id, "kind": p.kind, "bits": p.bits_per_weight, "compute": p.compute, "quality": p.quality,
            "quality_rank": p.quality_rank, "needs_bf16": "bf16" in p.requires, "needs_fp8": "fp8" in p.requires,
            "trainable": p.trainable, "gguf": p.kind == "gguf", "vllm": "vllm" in p.engines, "tier": c.tier,
        }, c.tier),
        "model": _once(req.model, lambda: {
            "id": req.model.id, "family": req.model.family, "params_b": req.model.params / 1e9,
            "layers": req.model.layers, "kv_heads": req.model.kv_heads,
            "attention_heads": req.model.attention_heads, "max_context": req.model.max_context,
            "moe": bool(req.model.experts), "released_precision": req.model.released_precision,
        }),
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
        "fit": {"min_count": c.min_count, "lightest_precision": c.lightest_precision,
                "any_count_fits": c.min_count > 0},
        "perf": {
            "decode_tps": decode, "prefill_tps": c.prefill_tps, "train_tps": c.train_tps,
            "decode_tps_per_seq": decode / req.batch if decode else 0.0,
            "train_days": c.train_days, "train_days_slow": c.train_days_slow, "link": c.link.kind,
            "capacity_batch": sz.users_per_replica * sz.replicas, "capacity_tps": sz.total_tps,
        },
        "power": {
            "watts": e.watts, "host_w": e.host_watts,
            "total_board_w": est.power["board_power_w"] * max(sz.replicas, 1),
            "energy_cost_per_year": e.energy_per_year, "per_million_tokens": per_million,
            "per_million_tokens_usd": per_million / cat.energy.currencies[req.currency],
        },
        "cost": {
            "capex": e.capex, "tco": e.tco, "budget_ratio": e.budget_ratio, "energy_share": e.energy_share,
            "shortfall": e.shortfall,
            "rent_per_hour": c.rent.per_hour if c.rent else 0.0, "rent_total": c.rent.total if c.rent else 0.0,
            "rent_vs_tco": c.rent.vs_tco if c.rent else 0.0,
            "rent_basis": c.rent.basis if c.rent else "", "break_even": c.rent.break_even if c.rent else "",
            "per_million_tokens": c.cost_per_million_tokens, "run": c.run_cost, "platform_share": e.platform_share,
        },
        "plan": _plan_fact(est.plan),
        "req": _once(req, lambda: {
            "workload": req.workload, "region": req.region, "domicile": req.domicile, "deployment": req.deployment,
            "budget": req.budget,
            "context": req.context, "batch": req.batch, "hours_per_day": req.hours_per_day, "years": req.years,
            "training": wl.trains, "tokens": req.tokens or 0.0, "currency": req.currency,
            "serving": wl.serving, "users": req.users, "prompt_tokens": req.prompt_tokens,
            "output_tokens": req.output_tokens, "min_tokens_per_s": req.min_tokens_per_s, "ttft_s": req.ttft_s,
            "deadline_days": req.deadline_days, "max_desk_cards": req.max_desk_cards,
            "new_only": req.condition == "new",
        }),
    }


# Parts of the fact that depend only on the GPU, the model, the request, or the precision and its tier, are built
# once and shared by every candidate (facts are read, never written). Keyed by object identity; the stored object
# keeps its id from being reused.
_SHARED: dict[tuple[int, Any], tuple[Any, dict[str, Any]]] = {}


def _once(obj: Any, build, extra: Any = None) -> dict[str, Any]:
    """The part built from `obj` (and `extra`, e.g. a precision's quality tier), shared across candidates."""
    hit = _SHARED.get((id(obj), extra))
    if hit is not None and hit[0] is obj:
        return hit[1]
    if len(_SHARED) > 4096:
        _SHARED.clear()
    d = build()
    _SHARED[(id(obj), extra)] = (obj, d)
    return d


_NO_PLAN = {"offload": "none", "slowdown": 1.0, "sharding": "none", "host_gib": 0.0, "tp": 1, "pp": 1, "dp": 1,
            "tensor_link": "none", "tensor_share": 0.0, "bubble_share": 0.0, "fabric_share": 0.0}


def _plan_fact(plan: Any) -> dict[str, Any]:
    """The training plan's strategy and layout as rules read them (a neutral plan for inference)."""
    if plan is None:
        return _NO_PLAN
    lo, sh = plan.layout, plan.shares
    return {"offload": plan.strategy.offload, "slowdown": plan.slowdown, "sharding": plan.strategy.sharding,
            "host_gib": plan.host_gib_per_node, "tp": lo.tp, "pp": lo.pp, "dp": lo.dp,
            "tensor_link": plan.links.get("tensor") or "none", "tensor_share": sh["tensor"],
            "bubble_share": sh["bubble"], "fabric_share": sh["fabric"]}

