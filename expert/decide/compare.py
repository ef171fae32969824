"""Stage 7c. `expert compare`: two or three configurations for the same request, side by side.

Each configuration (`2xh100-sxm@fp8`) goes through the same pipeline as `advise` with the pool narrowed to
that GPU at that count and precision, so the numbers are the ones the report prints for it: capex with the
platform, what it delivers at the requirement, the unit cost, memory per GPU and the verdicts that reject it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from ..catalog import Catalog
from ..core.docschema import SCHEMA_VERSION
from ..core.errors import InputError
from ..core.workloads import WORKLOADS
from ..request import Request, resolve_gpu, resolve_precision
from ..rulelang import RuleSet
from .advice import advise

_SPEC = re.compile(r"\s*(?:([0-9]+)\s*[xX*]\s*)?([^@\s]+)\s*(?:@\s*(\S+))?\s*")
MAX_COUNT = 4096


def parse_config(cat: Catalog, text: str) -> tuple[str, int, str | None]:
    """`2xh100-sxm@fp8` -> (gpu id, count, precision); the count defaults to 1, the precision to the request's."""
    m = _SPEC.fullmatch(str(text))
    if not m:
        raise InputError(f"compare: {str(text)[:80]!r} is not a configuration; expected COUNTxGPU@PRECISION, "
                         "e.g. 2xh100-sxm@fp8 or l40s@int4")
    count = int(m.group(1) or 1)
    if not 1 <= count <= MAX_COUNT:
        raise InputError(f"compare: {text!r}: the GPU count must be from 1 to {MAX_COUNT:,}")
    gpu = resolve_gpu(cat, m.group(2), f"compare {text}")
    prec = resolve_precision(cat, m.group(3)) if m.group(3) else None
    return gpu, count, None if prec == "auto" else prec


def _decision(adv: Any, r: Any) -> dict[str, Any]:
    """advise's decision numbers for this configuration; without a sourced rental price for its GPU, buy or rent
    says so (advise would point at another system, which a side-by-side view shows in its own column)."""
    d = adv.decision_for(r)
    if d and r.candidate.rent is None:
        d["buy_or_rent"] = f"buy: {r.candidate.gpu.id} has no sourced rental price"
    return d


def _score(r: Any, floor: dict[tuple[int, int], float], decodes: bool, own: float) -> float:
    """The score `advise` shows: 100 x (lowest TCO of a feasible system of this quality / this TCO) x the rule
    factors; a quality no feasible system of the report reaches keeps the column's own score."""
    c = r.candidate
    cheapest = floor.get((c.tier, c.quality_class) if decodes else (0, 0))
    if cheapest is None or c.tco <= 0:
        return own
    return round(100 * cheapest / c.tco * math.prod(r.factors.values()), 2)


def compare(cat: Catalog, rules: RuleSet, req: Request, specs: list[str]) -> dict[str, Any]:
    """The view model of `expert compare`: one entry per configuration, in the order given."""
    # Scores are relative to the cheapest feasible system of the same quality in the whole report, so they are
    # taken from the report `advise` gives for this request (one full advise), not from each column's own.
    full = advise(cat, rules, req)
    decodes = WORKLOADS[req.workload].decodes
    floor: dict[tuple[int, int], float] = {}
    for x in full.outcome.ranked:
        if x.feasible:
            q = (x.candidate.tier, x.candidate.quality_class) if decodes else (0, 0)
            floor[q] = min(floor.get(q, math.inf), x.candidate.tco)
    rows = []
    for spec in specs:
        gpu_id, count, prec = parse_config(cat, spec)
        r = dataclasses.replace(req, precision=prec) if prec else req
        gpu = dataclasses.replace(cat.gpus[gpu_id], counts=(count,))
        adv = advise(cat, rules, r, gpus=[gpu])
        o = adv.outcome
        pool = [x for x in o.ranked + o.rejected if x.candidate.count == count
                and (prec is None or x.candidate.precision.id == prec)]
        if not pool:
            raise InputError(f"compare {spec}: {count} x {gpu_id} at {prec or req.precision} is not a configuration "
                             f"advise weighs for {req.workload} (see `expert estimate --gpu {gpu_id}`)")
        best = pool[0]  # ranked first (best feasible), else the first rejected
        c = best.candidate
        d = adv.candidate_dict(best)
        mem = d["estimate"]["memory_gib"]
        rows.append({
            "config": spec.strip(), "label": d["label"], "system": d["system"], "gpu": d["gpu"],
            "gpu_name": d["gpu_name"], "count": d["count"], "replicas": d["replicas"], "gpus": d["gpus"],
            "precision": d["precision"], "engine": d["engine"], "parallelism": d["parallelism"],
            "feasible": not best.rejected_by, "meets_requirement": c.sizing.meets,
            "capex": d["capex"], "gpu_capex": d["gpu_capex"], "platform_capex": d["platform_capex"],
            "tco": d["tco"], "energy_cost_per_year": d["energy_cost_per_year"],
            "decision": _decision(adv, best),
            "cost_per_million_tokens": d["cost_per_million_tokens"], "train_days": d["train_days"],
            "run_cost": d["run_cost"], "sizing": d["sizing"],
            "memory_per_gpu_gib": mem.get("per_gpu"), "available_per_gpu_gib": mem.get("available_per_gpu"),
            "fits": d["estimate"]["fits"], "score": _score(best, floor, decodes, d["score"]), "rent": d["rent"],
            "rejected_by": [{"rule": v.rule.id, "because": v.text} for v in best.rejected_by],
        })
    return {"schema_version": SCHEMA_VERSION, "currency": req.currency,
            "request": {**req.to_dict(), "model_name": req.model.name},
            "trains": WORKLOADS[req.workload].trains, "configs": rows}
