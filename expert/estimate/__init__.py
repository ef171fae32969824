"""Stage 3: the numeric estimator. Memory, throughput, power of one configuration.

Pure functions of catalog facts; no engine, no I/O. Every result carries the assumptions it used,
in words a reviewer can check. Formulas (see docs/estimator.md for the derivations):

- weights   = linear params x bits/8 + embedding params x embedding bits/8          (memory.py)
- KV cache  = 2 x layers x kv_heads x head_dim x bytes x tokens x batch  (GQA-aware)  (memory.py)
- decode    = max(bytes read / (bandwidth x fraction), FLOPs / (peak x fraction)) + per-layer and per-step
              overheads of the engine + all-reduce                                    (decode.py)
- prefill   = (2 x active params + attention) FLOPs per token / (peak x MFU)        (prefill.py)
- training  = a plan (plan.py): strategy x layout x offload that fits; step = compute / (1 - bubble) + exposed
              tensor / context / pipeline / data traffic + host offload; launch config for it        (plan.py)
- serving   = continuous batching at a load: the decode step with prefill riding along (serving.py)
- offload   = llama.cpp layers beyond GPU memory run at host-memory bandwidth       (offload.py)
- links     = NVLink inside its domain, PCIe inside one server, the network beyond  (links.py)

Each throughput figure carries low / expected / high (residual quantiles of the validation set per kind and
GPU family, facts/efficiency.yaml `ranges`) and its provenance: measured | derived | assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from ..catalog import Catalog
from ..core.workloads import WORKLOADS
from .config import GIB, Config, Estimate
from .decode import decode
from .engines import ENGINES, constant, engine_efficiency, memory_system, pick_engine
from .links import Link, has_fabric, link_for, nodes_spanned, scale_up_gpus
from .memo import ESTIMATES, PHYSICS
from .memory import KV_CACHE_BYTES, estimate_memory, kv_bytes_per_token, lora_params, weight_bytes
from .offload import max_context, partial_offload
from .power import power
from .prefill import prefill
from .serving import Serving, serve

__all__ = ["ENGINES", "GIB", "KV_CACHE_BYTES", "Config", "Estimate", "Link", "Serving", "constant", "decode_rate",
           "engine_efficiency", "estimate", "family", "fits_context", "kv_bytes_per_token", "link_for", "lora_params",
           "has_fabric", "nodes_spanned", "scale_up_gpus",
           "max_context", "memory_system", "partial_offload", "pick_engine", "figure_range", "serve", "weight_bytes",
           "serving_fit", "Fit", "Plan", "plan_training", "train_rate"]


# The training-plan search (plan.py, the package's largest module) and the training-rate model are imported when
# a training configuration is first estimated or they are first named here: an inference request never reads them,
# and a cold `expert advise` for serving then neither compiles nor executes them.
_LAZY = {"Plan": "plan", "plan_training": "plan", "plan_memory": "plan", "train_rate": "training"}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)


def decode_rate(cat: Catalog, est: Estimate, batch: int) -> float:
    """Aggregate decode tokens/s of an estimated inference configuration at another batch size."""
    return decode(cat, est.config, est.engine, est.parallelism, batch)[0]


def family(cat: Catalog, gpu) -> str:
    """GPU family for accuracy ranges: software stack x memory system (cuda-hbm, cuda-gddr, metal-unified...)."""
    return f"{gpu.stack}-{memory_system(cat, gpu)}"


def measured_key(kind: str, cfg: Config, engine: str) -> str:
    c = cfg
    # The workload is part of the configuration: a LoRA record is no measurement of a full fine-tune.
    return f"{kind}|{c.workload}|{c.model.id}|{c.gpu.id}|{c.count}|{c.precision.id}|{engine}|{c.context}|{c.batch}"


def figure_range(cat: Catalog, kind: str, cfg: Config, engine: str, value: float | None,
                 entry: dict | None = None) -> dict | None:
    """low / expected / high of one figure and where it comes from.

    The band is the 5th-95th percentile of published/estimated over the validation records of this kind
    and GPU family (benchmarks/calibrate.py writes it); `measured` when a validation record has exactly
    this configuration, `assumed` when the efficiency entry is an engineering assumption, else `derived`."""
    if value is None:
        return None
    ranges = cat.efficiency.get("ranges", {}).get(kind, {})
    band = ranges.get(family(cat, cfg.gpu)) or ranges.get("all") or {"low": 1.0, "high": 1.0}
    measured = cat.efficiency.get("measured", {}).get(measured_key(kind, cfg, engine))
    if measured is not None:
        prov, basis = "measured", measured["record"]
    elif entry is not None and set(entry.get("sources", ())) <= {"ENGINEERING_ASSUMPTION"}:
        prov, basis = "assumed", entry.get("basis", "")
    else:
        prov, basis = "derived", "formula with cited factors (docs/estimator.md, facts/efficiency.yaml)"
    return {"low": value * band["low"], "expected": value, "high": value * band["high"], "provenance": prov,
            "basis": basis}


def fits_context(cat: Catalog, cfg: Config, engine: str):
    """A predicate: does this configuration hold a KV cache of `context` tokens?"""
    def fits(context: int) -> bool:
        trial = replace(cfg, context=max(int(context), 1))
        return estimate_memory(cat, trial, engine, None).fits
    return fits


def estimate(cat: Catalog, cfg: Config) -> Estimate:
    """Memory, speed, power and (for training) the plan of one configuration; memoised per process (memo.py).
    The returned Estimate is shared: do not mutate it."""
    return ESTIMATES.get(cat, cfg, (), lambda: _estimate(cat, cfg))


class Fit(NamedTuple):
    """Whether a serving configuration holds the model, and what sizing it reads: its config and engine."""
    config: Config
    engine: str
    fits: bool


def serving_fit(cat: Catalog, cfg: Config) -> Fit:
    """The memory half of a serving (non-training) estimate: `estimate(cat, cfg).fits` and `.engine`, the same
    figures, without the decode, prefill, ranges and power an estimate also works out. Candidates ask it of every
    GPU x count x precision at one sequence (does it fit, the fewest count that fits, a lighter precision that
    would) and ask for the full estimate only where a candidate carries it: at the load it is sized for, or at
    one sequence where it cannot serve the requirement. Memoised per process with the physics (memo.PHYSICS)."""
    return PHYSICS.get(cat, cfg, ("fit",), lambda: _serving_fit(cat, cfg))


def _serving_fit(cat: Catalog, cfg: Config) -> Fit:
    if WORKLOADS[cfg.workload].trains:
        raise ValueError(f"serving_fit: {cfg.workload} is a training workload (its fit is its plan's)")
    # The engine and memory of _physics for a serving workload, by the same calls.
    engine = cfg.engine or pick_engine(cfg.gpu, cfg.precision, cfg.workload)
    return Fit(cfg, engine, estimate_memory(cat, cfg, engine, None).fits)


def _estimate(cat: Catalog, cfg: Config) -> Estimate:
    # Memory, speed and the plan do not depend on electricity, currency, PUE or deployment (only power does):
    # they are computed once per physical configuration and shared by every price basis (memo.PHYSICS).
    engine, mem, link, throughput, _, plan, ranges, offload = PHYSICS.get(cat, cfg, ("physics",),
                                                                          lambda: _physics(cat, cfg))
    wl = WORKLOADS[cfg.workload]
    rate = throughput["train_tokens_per_s"] if wl.trains else throughput["decode_tokens_per_s"]
    pw = power(cat, cfg, rate, None)
    est = Estimate(cfg, engine, mem.parallelism, mem.breakdown, mem.fits, throughput, pw, link,
                   worded=_wording(cat, cfg, rate, offload))
    est.plan = plan
    est.ranges = ranges
    if offload is not None:
        est.offload = offload
    return est


def _wording(cat: Catalog, cfg: Config, rate: float | None, offload) -> Callable[[], list[str]]:
    """The estimate's assumptions in words: the physics and the power worked out again with their notes on (the
    same code, so the words state the figures the estimate holds), formatted only when read."""
    def words() -> list[str]:
        notes = _physics(cat, cfg, worded=True)[4]
        power(cat, cfg, rate, notes)
        if offload is not None:
            notes.append(f"partial CPU offload (llama.cpp -ngl {offload.gpu_layers}): {offload.cpu_layers} of "
                         f"{cfg.model.layers} layers in host RAM at {offload.host_bandwidth_gbs:.0f} GB/s "
                         f"achievable; decode {offload.decode_tokens_per_s:.1f} tokens/s, limited by the "
                         f"{offload.limited_by}")
        return notes
    return words


def _decode_note(cat: Catalog, cfg: Config, engine: str, parallelism: str, link: Link, read: float, comm: float,
                 d: dict) -> str:
    g = cfg.gpu
    return (f"decode ({engine} on {g.stack}, {memory_system(cat, g)} memory): {read / 1e9:.2f} GB read per step at "
            f"{d['bandwidth_fraction']:.0%} of {g.bandwidth_gbs:g} GB/s, + {d['layer_overhead_us']:g} us per layer"
            + (f" + {d['step_overhead_us']:g} us per step" if d.get("step_overhead_us") else "")
            + (f", + {comm * 1e3:.2f} ms {link.kind} all-reduce" if comm and parallelism != "layer-split" else ""))


def _physics(cat: Catalog, cfg: Config, worded: bool = False) -> tuple:
    """Engine, memory, link, throughput, notes (None unless `worded`), plan, ranges and offload of one
    configuration. The notes are formatted only when `worded`: every figure is the same either way."""
    g, n = cfg.gpu, cfg.count
    wl = WORKLOADS[cfg.workload]
    engine = pick_engine(g, cfg.precision, cfg.workload) if wl.trains else (
        cfg.engine or pick_engine(g, cfg.precision, cfg.workload))
    notes = [f"memory in GiB (2^30 bytes); the {g.id}'s {g.memory_gib:g} GB is taken as {g.memory_gib:g} GiB"] \
        if worded else None
    # A training config's memory, checkpointing and sharding are the plan's (below): the generic memory model's
    # own notes on them would contradict it, so only its line on the weights' precision is kept.
    mem_notes: list[str] | None = [] if worded else None
    mem = estimate_memory(cat, cfg, engine, mem_notes)
    if notes is not None:
        notes.extend(mem_notes[:1] if wl.trains else mem_notes)
    link = link_for(cat, g, n)
    decode_tps = prefill_tps = train_tps = None
    entries: dict[str, dict | None] = {}
    plan = None
    if not wl.trains:
        decode_tps, read, comm, d = decode(cat, cfg, engine, mem.parallelism, cfg.batch)
        entries["decode_tokens_per_s"] = d
        entries["prefill_tokens_per_s"] = engine_efficiency(cat, "prefill", engine, g)
        if notes is not None:
            notes.append(_decode_note(cat, cfg, engine, mem.parallelism, link, read, comm, d))
        bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
        prefill_tps = prefill(cat, cfg, engine, mem.parallelism, read, bw, link, notes)
    else:
        # The training plan (strategy x layout x offload) replaces the fixed 16 B/param, no-offload memory model
        # and the single-constant speed: memory, fit and tokens/s are the chosen plan's.
        from .plan import plan_memory, plan_training

        plan = plan_training(cat, cfg, worded=worded)
        mem = plan_memory(cat, cfg, plan)
        train_tps = plan.tokens_per_s
        if notes is not None:
            notes.extend(plan.notes)
        entries["train_tokens_per_s"] = cat.efficiency["constants"]["training_hfu"]
    throughput = {"decode_tokens_per_s": decode_tps, "prefill_tokens_per_s": prefill_tps,
                  "train_tokens_per_s": train_tps}
    ranges = {k: figure_range(cat, k, cfg, engine, v, entries.get(k)) for k, v in throughput.items()
              if v is not None}
    offload = partial_offload(cat, cfg, mem.breakdown) if not mem.fits and engine == "llama.cpp" else None
    return engine, mem, link, throughput, notes, plan, ranges, offload
