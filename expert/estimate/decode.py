"""Decode (token generation) speed: memory-bound weight and KV reads, compute, launches, all-reduce."""

from __future__ import annotations

from ..catalog import Catalog, Model
from .config import Config
from .engines import constant, engine_efficiency
from .links import link_for
from .memory import kv_bytes_per_token, weight_bytes


def unique_expert_fraction(model: Model, batch: int) -> float:
    """Share of an MoE layer's experts one decode step touches with `batch` tokens, uniform routing."""
    if not model.experts:
        return 1.0
    e, k = model.experts, model.active_experts
    return 1 - (1 - k / e) ** batch


def decode(cat: Catalog, cfg: Config, engine: str, parallelism: str, batch: int) -> tuple[float, float, float, dict]:
    """Decode tokens/s for `batch` sequences: (rate, bytes read per step, all-reduce time, efficiency entry).

    step = max(bytes read / (bandwidth x fraction), FLOPs / (peak x fraction)) + layers x overhead + comm."""
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    d = engine_efficiency(cat, "decode", engine, g)
    bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
    emb_bytes = m.embedding_params * p.embedding_bits / 8
    body = weight_bytes(m, p) - emb_bytes
    if m.experts:
        expert_bytes = m.experts * m.params_per_expert_layer * m.layers * p.bits_per_weight / 8
        body = body - expert_bytes + expert_bytes * unique_expert_fraction(m, batch)
    # Decode reads the lm_head, not the whole embedding table: one of the two (tied: the same) matrices.
    read = body + m.vocab_size * m.hidden_size * p.embedding_bits / 8 + kv_bytes_per_token(m, p) * cfg.context * batch
    launch = m.layers * d["layer_overhead_us"] * 1e-6
    peak = (g.peak_tflops(p.compute) or g.tflops_fp16 or 1.0) * 1e12
    compute = 2 * m.active_params * batch / (peak * n * d["compute_fraction"])
    if parallelism == "layer-split":
        # Layers run one GPU after another: capacity adds up, speed does not.
        t_mem = read / bw
        comm = (n - 1) * constant(cat, "layer_split_hop_us") * 1e-6
    else:
        t_mem = read / (bw * n)
        comm = 0.0
        if n > 1:
            link = link_for(cat, g, n)
            msg = batch * m.hidden_size * 2
            comm = 2 * m.layers * (link.latency_s + 2 * msg * (n - 1) / n / (link.gbs * 1e9))
    step = max(t_mem, compute) + launch + comm
    return batch / step, read, comm, d
