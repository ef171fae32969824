"""The engine's fact for a candidate: built here and only here, from the typed candidate record.

A fact is flat within a few groups (`gpu`, `precision`, `model`, `memory`, `fit`, `perf`, `power`,
`cost`, `req`): every rule condition reads fields of this one fact, so no rule ever needs a
cross-fact join (durable_rules' unsafe area, see shared/durable-rules.md). Its fields are exactly
vocabulary.FACT_FIELDS (tests/test_rulelang.py checks names and types).

The per-candidate fields are written once, as expressions (CANDIDATE_FIELDS over the names in LETS): the fact
builder is generated from them, and so is the engine's class function (rulelang/engine.py), which computes only
the fields the rules read, straight from the candidate, so that a request's hundreds of candidates need no fact
dict unless the engine is asked about one or a verdict on it is shown."""

from __future__ import annotations

import re
from typing import Any

from ..candidates import Candidate
from ..catalog import Catalog
from ..core.workloads import WORKLOADS

# Names the field expressions use, in dependency order: each is computed at most once per candidate, and only
# when a field that is needed reads it.
LETS: dict[str, str] = {
    "req": "c.request",
    "g": "c.gpu",
    "est": "c.estimate",
    "mem": "est.memory_gib",
    "e": "c.economics",
    "sz": "c.sizing",
    "rent": "c.rent",
    "decode": "c.decode_tps",
    "per_million": "c.energy_per_million_tokens",
    "plan_part": "_plan_fact(est.plan)",
}

# Groups built once per GPU, precision (and tier), model and request and shared by their candidates.
SHARED_GROUPS: dict[str, str] = {
    "gpu": "_gpu_part(c.gpu)",
    "precision": "_precision_part(c.precision, c.tier)",
    "model": "_model_part(c.request.model)",
    "req": "_req_part(c.request)",
}

# What each shared group is built from (and the extra part of its key): the engine's class function keeps the
# group's class items by that object, so a candidate whose GPU it has seen needs no group dict at all.
GROUP_SOURCES: dict[str, tuple[str, str | None]] = {
    "gpu": ("c.gpu", None),
    "precision": ("c.precision", "c.tier"),
    "model": ("c.request.model", None),
    "req": ("c.request", None),
}

# Every per-candidate field of the fact, in the fact's order; a shared group stands where it sits in the fact.
CANDIDATE_FIELDS: dict[str, str] = {
    "kind": "'candidate'",
    "id": "c.id",
    "gpu": "",
    "build.slots_needed": "g.slots * c.gpus",
    "build.stack_allowed": "g.stack in req.stacks",
    "build.host_memory_gib": "e.host_memory_gib",
    "count": "c.count",
    "system.gpus": "c.gpus",
    "system.replicas": "sz.replicas",
    "system.nodes": "c.nodes",
    "serving.meets": "sz.meets",
    "serving.users_per_replica": "sz.users_per_replica",
    "serving.per_user_tps": "sz.per_user_tps",
    "serving.ttft_s": "sz.ttft_s",
    "serving.total_tps": "sz.total_tps",
    "serving.shortfall": "sz.shortfall",
    "precision": "",
    "model": "",
    "engine": "est.engine",
    "parallelism": "est.parallelism",
    "memory.weights_gib": "mem['weights']",
    "memory.kv_cache_gib": "mem['kv_cache']",
    "memory.activations_gib": "mem['activations']",
    "memory.training_state_gib": "mem['gradients'] + mem['optimizer']",
    "memory.total_gib": "mem['total']",
    "memory.per_gpu_gib": "mem['per_gpu']",
    "memory.available_gib": "mem['available_per_gpu']",
    "memory.headroom_gib": "mem['headroom_per_gpu']",
    "memory.headroom_fraction": "mem['headroom_per_gpu'] / mem['available_per_gpu']",
    "memory.fits": "est.fits",
    "memory.kv_fraction": "mem['kv_cache'] / mem['total'] if mem['total'] else 0.0",
    "fit.min_count": "c.min_count",
    "fit.lightest_precision": "c.lightest_precision",
    "fit.any_count_fits": "c.min_count > 0",
    "perf.decode_tps": "decode",
    "perf.prefill_tps": "c.prefill_tps",
    "perf.train_tps": "c.train_tps",
    "perf.decode_tps_per_seq": "decode / req.batch if decode else 0.0",
    "perf.train_days": "c.train_days",
    "perf.train_days_slow": "c.train_days_slow",
    "perf.link": "c.link.kind",
    "perf.capacity_batch": "sz.users_per_replica * sz.replicas",
    "perf.capacity_tps": "sz.total_tps",
    "power.watts": "e.watts",
    "power.host_w": "e.host_watts",
    "power.total_board_w": "est.power['board_power_w'] * max(sz.replicas, 1)",
    "power.energy_cost_per_year": "e.energy_per_year",
    "power.per_million_tokens": "per_million",
    "power.per_million_tokens_usd": "per_million / cat.energy.currencies[req.currency]",
    "cost.capex": "e.capex",
    "cost.tco": "e.tco",
    "cost.budget_ratio": "e.budget_ratio",
    "cost.energy_share": "e.energy_share",
    "cost.shortfall": "e.shortfall",
    "cost.rent_per_hour": "rent.per_hour if rent else 0.0",
    "cost.rent_total": "rent.total if rent else 0.0",
    "cost.rent_vs_tco": "rent.vs_tco if rent else 0.0",
    "cost.rent_basis": "rent.basis if rent else ''",
    "cost.break_even": "rent.break_even if rent else ''",
    "cost.per_million_tokens": "c.cost_per_million_tokens",
    "cost.run": "c.run_cost",
    "cost.platform_share": "e.platform_share",
    "plan": "plan_part",  # a whole part (the neutral plan of inference is one shared dict)
    "req": "",
}


def _gpu_part(g: Any) -> dict[str, Any]:
    return _once(g, lambda: {
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
    })


def _precision_part(p: Any, tier: int) -> dict[str, Any]:
    return _once(p, lambda: {
        "id": p.id, "kind": p.kind, "bits": p.bits_per_weight, "compute": p.compute, "quality": p.quality,
        "quality_rank": p.quality_rank, "needs_bf16": "bf16" in p.requires, "needs_fp8": "fp8" in p.requires,
        "trainable": p.trainable, "gguf": p.kind == "gguf", "vllm": "vllm" in p.engines, "tier": tier,
    }, tier)


def _model_part(m: Any) -> dict[str, Any]:
    return _once(m, lambda: {
        "id": m.id, "family": m.family, "params_b": m.params / 1e9,
        "layers": m.layers, "kv_heads": m.kv_heads,
        "attention_heads": m.attention_heads, "max_context": m.max_context,
        "moe": bool(m.experts), "released_precision": m.released_precision,
    })


def _req_part(req: Any) -> dict[str, Any]:
    wl = WORKLOADS[req.workload]
    return _once(req, lambda: {
        "workload": req.workload, "region": req.region, "domicile": req.domicile, "deployment": req.deployment,
        "budget": req.budget,
        "context": req.context, "batch": req.batch, "hours_per_day": req.hours_per_day, "years": req.years,
        "training": wl.trains, "tokens": req.tokens or 0.0, "currency": req.currency,
        "serving": wl.serving, "users": req.users, "prompt_tokens": req.prompt_tokens,
        "output_tokens": req.output_tokens, "min_tokens_per_s": req.min_tokens_per_s, "ttft_s": req.ttft_s,
        "deadline_days": req.deadline_days, "max_desk_cards": req.max_desk_cards,
        "new_only": req.condition == "new",
    })


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


def field_expression(path: str) -> str:
    """The expression of one per-candidate field (a leaf of CANDIDATE_FIELDS, or a key of a whole part)."""
    expr = CANDIDATE_FIELDS.get(path)
    if expr:
        return expr
    head, _, leaf = path.partition(".")
    whole = CANDIDATE_FIELDS.get(head)
    if whole and leaf and head not in SHARED_GROUPS:
        return f"{whole}[{leaf!r}]"
    raise KeyError(path)


def code_env() -> dict[str, Any]:
    """What the generated code (this fact builder, the engine's class function) refers to."""
    return {"WORKLOADS": WORKLOADS, "_plan_fact": _plan_fact, "_gpu_part": _gpu_part,
            "_precision_part": _precision_part, "_model_part": _model_part, "_req_part": _req_part}


_NAME = re.compile(r"[A-Za-z_]\w*")


def let_lines(expressions: list[str]) -> list[str]:
    """The LETS statements these expressions need (and those they need), in dependency order."""
    need: set[str] = set()
    todo = [n for x in expressions for n in _NAME.findall(x) if n in LETS]
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo += [m for m in _NAME.findall(LETS[n]) if m in LETS]
    return [f"{n} = {x}" for n, x in LETS.items() if n in need]


def _builder_source() -> str:
    """`def candidate_fact(cat, c)`: the nested fact literal of CANDIDATE_FIELDS, groups in place."""
    parts: dict[str, list[str] | str] = {}  # top-level key -> its expression, or its group's "leaf: expr" items
    for path, expr in CANDIDATE_FIELDS.items():
        head, _, leaf = path.partition(".")
        if leaf:
            parts.setdefault(head, []).append(f"{leaf!r}: {expr}")  # type: ignore[union-attr]
        else:
            parts[head] = SHARED_GROUPS.get(head) or expr
    body = ",\n        ".join(f"{k!r}: " + (v if isinstance(v, str) else "{" + ", ".join(v) + "}")
                               for k, v in parts.items())
    lets = let_lines(list(CANDIDATE_FIELDS.values()))
    return ("def candidate_fact(cat, c):\n" + "".join(f"    {ln}\n" for ln in lets)
            + "    return {\n        " + body + ",\n    }\n")


def _compile_builder():
    env = code_env()
    exec(compile(_builder_source(), "<candidate fact>", "exec"), env)  # noqa: S102 - source from the table above
    return env["candidate_fact"]


_BUILD = _compile_builder()


def candidate_fact(cat: Catalog, c: Candidate) -> dict[str, Any]:
    """The engine's fact of one candidate (every field of vocabulary.FACT_FIELDS)."""
    return _BUILD(cat, c)


_VALUE_OF: dict[str, Any] = {}


def field_value(cat: Catalog, c: Candidate, path: str) -> Any:
    """One field of the candidate's fact (get_path of candidate_fact), computed without building the fact."""
    fn = _VALUE_OF.get(path)
    if fn is None:
        head, _, rest = path.partition(".")
        expr = (SHARED_GROUPS[head] + "".join(f"[{p!r}]" for p in rest.split(".")) if head in SHARED_GROUPS
                else field_expression(path))
        env = code_env()
        src = "def value(cat, c):\n" + "".join(f"    {ln}\n" for ln in let_lines([expr])) + f"    return {expr}\n"
        exec(compile(src, f"<fact field {path}>", "exec"), env)  # noqa: S102 - source from the table above
        fn = _VALUE_OF[path] = env["value"]
    return fn(cat, c)
