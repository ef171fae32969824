"""The rule vocabulary: every fact field a rule may read, with its type.

The rule compiler rejects any other path, and rulelang/facts.py builds exactly these fields (tested)."""

from __future__ import annotations

from typing import Any

FACT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "id": int,
    "gpu.id": str, "gpu.vendor": str, "gpu.segment": str, "gpu.architecture": str, "gpu.stack": str,
    "gpu.memory_gib": float, "gpu.bandwidth_gbs": float, "gpu.board_power_w": float, "gpu.bf16": bool,
    "gpu.fp8": bool, "gpu.flash_attention": int, "gpu.datacenter_licence": bool, "gpu.nvlink": bool,
    "gpu.nvlink_gbs": float, "gpu.nvlink_max_gpus": int, "gpu.p2p": bool, "gpu.ecc": bool, "gpu.slots": int,
    "gpu.form_factor": str, "gpu.cooling": str, "gpu.vllm": bool, "gpu.tensorrt_llm": bool,
    "gpu.llama_cpp": bool, "gpu.export_restricted_china": bool, "gpu.price_condition": str,
    "gpu.launch_year": int, "gpu.china_only": bool, "gpu.availability": str, "gpu.availability_date": str,
    "build.slots_needed": int, "build.stack_allowed": bool,
    "build.host_memory_gib": float,
    "count": int, "system.gpus": int, "system.replicas": int, "system.nodes": int,
    "serving.meets": bool, "serving.users_per_replica": int, "serving.per_user_tps": float, "serving.ttft_s": float,
    "serving.total_tps": float, "serving.shortfall": str,
    "precision.id": str, "precision.kind": str, "precision.bits": float, "precision.compute": str,
    "precision.quality": str, "precision.quality_rank": int, "precision.needs_bf16": bool,
    "precision.needs_fp8": bool, "precision.trainable": bool, "precision.gguf": bool, "precision.vllm": bool,
    "precision.tier": int,
    "model.id": str, "model.family": str, "model.params_b": float, "model.layers": int, "model.kv_heads": int,
    "model.attention_heads": int, "model.max_context": int, "model.moe": bool, "model.released_precision": str,
    "engine": str, "parallelism": str,
    "memory.weights_gib": float, "memory.kv_cache_gib": float, "memory.activations_gib": float,
    "memory.training_state_gib": float, "memory.total_gib": float, "memory.per_gpu_gib": float,
    "memory.available_gib": float, "memory.headroom_gib": float, "memory.headroom_fraction": float,
    "memory.fits": bool, "memory.kv_fraction": float,
    "fit.min_count": int, "fit.lightest_precision": str, "fit.any_count_fits": bool,
    "perf.decode_tps": float, "perf.prefill_tps": float, "perf.train_tps": float,
    "perf.decode_tps_per_seq": float, "perf.train_days": float, "perf.train_days_slow": float, "perf.link": str,
    "perf.capacity_batch": int, "perf.capacity_tps": float,
    "power.watts": float, "power.host_w": float, "power.total_board_w": float, "power.energy_cost_per_year": float,
    "power.per_million_tokens": float, "power.per_million_tokens_usd": float,
    "cost.capex": float, "cost.tco": float, "cost.budget_ratio": float, "cost.energy_share": float,
    "cost.shortfall": float, "cost.rent_total": float, "cost.rent_vs_tco": float,
    "cost.rent_per_hour": float, "cost.per_million_tokens": float, "cost.run": float, "cost.platform_share": float,
    "cost.rent_basis": str, "cost.break_even": str,
    "plan.offload": str, "plan.slowdown": float, "plan.sharding": str, "plan.host_gib": float,
    "plan.tp": int, "plan.pp": int, "plan.dp": int, "plan.tensor_link": str, "plan.tensor_share": float,
    "plan.bubble_share": float, "plan.fabric_share": float,
    "req.workload": str, "req.region": str, "req.domicile": str, "req.deployment": str, "req.budget": float,
    "req.context": int,
    "req.batch": int, "req.hours_per_day": float, "req.years": float, "req.training": bool,
    "req.tokens": float, "req.currency": str, "req.serving": bool, "req.users": int, "req.prompt_tokens": int,
    "req.output_tokens": int, "req.min_tokens_per_s": float, "req.ttft_s": float, "req.deadline_days": float,
    "req.max_desk_cards": int, "req.new_only": bool,
}


def get_path(fact: dict[str, Any], path: str) -> Any:
    cur: Any = fact
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def sample_fact() -> dict[str, Any]:
    """A fact with every field present and of the right type: the shape `because` templates render on."""
    defaults = {str: "x", int: 1, float: 1.0, bool: True}
    fact: dict[str, Any] = {}
    for path, typ in FACT_FIELDS.items():
        cur = fact
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = defaults[typ if isinstance(typ, type) else typ[0]]
    return fact


# The fields that may differ between two candidates of one configuration in requests that differ only in budget
# (what candidates.py shares between such requests, a candidate's `basis`, fixes every other field): the engine's
# class function computes these per candidate and keeps the rest per basis. tests/test_speed_paths.py checks
# every field of the fact over budget ladders.
PER_BUDGET = frozenset({"id", "cost.budget_ratio", "cost.shortfall", "req.budget"})
