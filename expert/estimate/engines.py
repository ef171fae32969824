"""Which inference/training engine runs a configuration, and its calibrated efficiency entry."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog, Gpu, Precision
from ..core.workloads import WORKLOADS

# The engines `estimate --engine` and `advise --engine` accept. Each has an entry in facts/efficiency.yaml
# `engines` (execution mode, what it runs on) and falls back to the calibration of the engine it names as `like`.
ENGINES = ("llama.cpp", "vllm", "sglang", "tensorrt-llm", "transformers", "exllamav2", "mlc", "mlx")


def constant(cat: Catalog, name: str) -> float:
    """A named calibration constant of facts/efficiency.yaml (each has a source and a basis there)."""
    return float(cat.efficiency["constants"][name]["value"])


def memory_system(cat: Catalog, gpu: Gpu) -> str:
    """hbm | gddr | unified: what sets the achievable fraction of the datasheet bandwidth.

    The catalog's memory_type where the GPU catalog states one, else facts/efficiency.yaml `memory_systems`
    (sourced per GPU), else unified for Apple and GDDR for the rest (every consumer/workstation card)."""
    kind = (getattr(gpu, "memory_type", None) or "").lower()
    for name in ("hbm", "gddr"):
        if name in kind:
            return name
    if "lpddr" in kind or "unified" in kind or gpu.stack == "metal":
        return "unified"
    for name, ids in cat.efficiency.get("memory_systems", {}).items():
        if isinstance(ids, dict) and gpu.id in ids.get("gpus", ()):
            return name
    return "gddr"


def pick_engine(gpu: Gpu, precision: Precision, workload: str) -> str:
    """The engine a practitioner would use: llama.cpp for GGUF and Apple, vLLM for serving, PyTorch to train."""
    if WORKLOADS[workload].trains:
        return "pytorch"
    if precision.kind == "gguf" or gpu.stack == "metal":
        return "llama.cpp"
    return "vllm"


def training_key(cat: Catalog, gpu: Gpu) -> str:
    """The facts/efficiency.yaml `training` entry a GPU's HFU comes from: stack-architecture-segment where the
    validation set fits one (GeForce runs PyTorch at the half-rate FP32-accumulate peak, so its fit does not carry
    over to the professional cards of the same chip), else stack-architecture."""
    table = cat.efficiency.get("training", {})
    narrow = f"{gpu.stack}-{gpu.architecture}-{gpu.segment}"
    return narrow if narrow in table else f"{gpu.stack}-{gpu.architecture}"


def engine_info(cat: Catalog, engine: str) -> dict[str, Any]:
    return cat.efficiency.get("engines", {}).get(engine, {})


def _lookup(cat: Catalog, table: dict, engine: str, gpu: Gpu) -> tuple[str, str]:
    """(key, engine whose entry it is): engine-stack-architecture, engine-stack-memory system, engine-stack,
    then the same for the engine this one is `like`, then vLLM's."""
    mem = memory_system(cat, gpu)
    seen = set()
    name: str | None = engine
    while name and name not in seen:
        seen.add(name)
        for key in (f"{name}-{gpu.stack}-{gpu.architecture}", f"{name}-{gpu.stack}-{mem}", f"{name}-{gpu.stack}"):
            if key in table:
                return key, name
        name = engine_info(cat, name).get("like")
    for key in (f"vllm-{gpu.stack}-{mem}", f"vllm-{gpu.stack}", "vllm-cuda"):
        if key in table:
            return key, "vllm"
    return "vllm-cuda", "vllm"


def borrowed(cat: Catalog, section: str, engine: str, gpu: Gpu) -> str | None:
    """The key of the other engine's entry this engine borrows on this GPU, or None when it has its own."""
    key, owner = _lookup(cat, cat.efficiency[section], engine, gpu)
    return key if owner != engine else None


_CHOSEN: dict[tuple, tuple[dict, Gpu, str, bool]] = {}


def engine_efficiency(cat: Catalog, section: str, engine: str, gpu: Gpu) -> dict[str, Any]:
    """Most specific calibration entry: engine-stack-architecture, engine-stack-memory system, engine-stack,
    then the same for the engine this one is `like` (SGLang like vLLM, MLX like llama.cpp), then vLLM's.

    An engine with no entry of its own and no cited measurement in its `engines` entry (sources only
    ENGINEERING_ASSUMPTION: exllamav2, MLC, MLX, SGLang) gets the lender's numbers as an assumption: the entry
    returned cites ENGINEERING_ASSUMPTION, so its figures carry provenance `assumed` (a default a --facts-dir
    efficiency.yaml overrides), never the lender's `derived`. The copy is cached so that it is one object per
    (section, engine, entry), as benchmarks/calibrate.py expects."""
    table = cat.efficiency[section]
    # Which entry a (section, engine, GPU) takes is asked hundreds of thousands of times in a sweep; the answer
    # is kept per table object and size (benchmarks/calibrate.py adds entries and edits them in place: the
    # entry itself is always read from the table).
    lk = (id(table), len(table), section, engine, gpu.id, id(gpu))
    hit = _CHOSEN.get(lk)
    if hit is None or hit[0] is not table or hit[1] is not gpu:
        key, owner = _lookup(cat, table, engine, gpu)
        own_sources = set(engine_info(cat, engine).get("sources", ()))
        if len(_CHOSEN) > 10_000:
            _CHOSEN.clear()
        hit = _CHOSEN[lk] = (table, gpu, key, owner == engine or not own_sources <= {"ENGINEERING_ASSUMPTION"})
    key = hit[2]
    entry = table[key]
    if hit[3]:
        return entry
    cache = cat.efficiency.setdefault("_borrowed", {})
    ck = f"{section}|{engine}|{key}"
    if ck not in cache:
        cache[ck] = {**entry, "sources": ["ENGINEERING_ASSUMPTION"],
                     "basis": f"assumed: {engine} has no published measurement on this GPU class, so it takes {key}'s "
                              f"calibration ({entry.get('basis', '')}); override in a --facts-dir efficiency.yaml"}
    return cache[ck]
