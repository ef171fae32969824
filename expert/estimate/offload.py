"""Partial CPU offload (llama.cpp -ngl N): the layers that do not fit in GPU memory run from host RAM."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog
from .config import GIB, Config
from .decode import overheads, weights_read
from .engines import constant, engine_efficiency
from .memory import cached_tokens, kv_bytes_per_token


@dataclass(frozen=True)
class Offload:
    gpu_layers: int
    cpu_layers: int
    decode_tokens_per_s: float
    host_bandwidth_gbs: float
    limited_by: str  # gpu | host: the path that takes longer per token


def partial_offload(cat: Catalog, cfg: Config, breakdown: dict[str, float]) -> Offload | None:
    """Decode speed when llama.cpp keeps as many layers as fit on the GPU(s) and runs the rest on the CPU.

    Each token passes through every layer in turn, so a step costs the GPU layers' bytes at GPU bandwidth
    plus the host layers' bytes at host bandwidth: the slower path sets the pace. None when the model fits,
    or when the host would not hold the remainder either."""
    m, g, n = cfg.model, cfg.gpu, cfg.count
    if g.stack == "metal":
        return None  # unified memory: there is no separate host pool to spill to
    room = n * (breakdown["available_per_gpu"] - breakdown["overhead"] / n) - breakdown["activations"]
    per_layer = (breakdown["weights"] + breakdown["kv_cache"]) / m.layers
    gpu_layers = max(0, min(m.layers, int(room // per_layer)))
    if gpu_layers >= m.layers:
        return None
    cpu_layers = m.layers - gpu_layers
    if cpu_layers * per_layer > constant(cat, "host_memory_gib"):
        return None
    d = engine_efficiency(cat, "decode", "llama.cpp", g)
    host_bw = constant(cat, "host_memory_bandwidth_gbs") * constant(cat, "host_bandwidth_fraction") * 1e9
    kv = kv_bytes_per_token(m, cfg.precision, cfg.kv_cache) * cached_tokens(m, cfg.context) * cfg.batch
    read = weights_read(cfg, cfg.batch) + kv
    share = gpu_layers / m.layers
    t_gpu = read * share / (g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"])
    t_host = read * (1 - share) / host_bw
    step = t_gpu + t_host + overheads(d, m.layers)
    return Offload(gpu_layers, cpu_layers, cfg.batch / step, host_bw / 1e9, "host" if t_host >= t_gpu else "gpu")


def max_context(cat: Catalog, cfg: Config, fits_at) -> int:
    """Longest context (tokens) for which `fits_at(context)` holds, by bisection up to the model maximum; 0 if
    not even one token fits."""
    lo, hi = 0, cfg.model.max_context
    if fits_at(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits_at(mid):
            lo = mid
        else:
            hi = mid
    return lo


__all__ = ["GIB", "Offload", "max_context", "partial_offload"]
