"""Decode (token generation) speed: memory-bound weight and KV reads, compute, launches, all-reduce."""

from __future__ import annotations

from ..catalog import Catalog, Model
from .config import Config
from .engines import constant, engine_efficiency
from .links import link_for
from .memory import cached_tokens, kv_bytes_per_token, weight_bytes


def unique_expert_fraction(model: Model, batch: int) -> float:
    """Share of an MoE layer's experts one decode step touches with `batch` tokens, uniform routing."""
    if not model.experts:
        return 1.0
    e, k = model.experts, model.active_experts
    return 1 - (1 - k / e) ** batch


def weights_read(cfg: Config, batch: int) -> float:
    """Weight bytes one decode step streams: the body (MoE: the experts `batch` tokens touch) + the lm_head."""
    m, p = cfg.model, cfg.precision
    emb_bytes = m.embedding_params * p.embedding_bits / 8
    body = weight_bytes(m, p) - emb_bytes
    if m.experts:
        routed = getattr(m, "routed_expert_params", None) or m.experts * m.params_per_expert_layer * m.layers
        expert_bytes = routed * p.bits_per_weight / 8
        body = body - expert_bytes + expert_bytes * unique_expert_fraction(m, batch)
    # A multimodal checkpoint's vision tower is loaded but not run for text tokens.
    body -= m.vision_params * p.bits_per_weight / 8
    # Decode reads the lm_head, not the whole embedding table: one of the two (tied: the same) matrices.
    return body + m.vocab_size * m.hidden_size * p.embedding_bits / 8


def overheads(d: dict, layers: int) -> float:
    """Per-step host/launch cost: per-layer kernel launches (eager engines) plus a fixed per-step cost
    (sampling, scheduling, one CUDA-graph replay)."""
    return (layers * d["layer_overhead_us"] + d.get("step_overhead_us", 0.0)) * 1e-6


def step_time(cat: Catalog, cfg: Config, d: dict, parallelism: str, batch: int, context: float,
              tokens: float | None = None, compute_fraction: float | None = None) -> tuple[float, float, float, float]:
    """Seconds of one decode step for `batch` sequences with `context` tokens cached each, processing
    `tokens` tokens in all (default: one per sequence; continuous batching adds prefill chunks).

    Returns (step, bytes read, memory time, compute time): step = max(memory, compute) + overheads + comm."""
    return stepper(cat, cfg, d, parallelism, context, compute_fraction)(batch, batch if tokens is None else tokens)


def stepper(cat: Catalog, cfg: Config, d: dict, parallelism: str, context: float,
            compute_fraction: float | None = None):
    """step_time at a fixed configuration and context as a function of (batch, tokens): what does not depend on
    the load is worked out once (serving sizing asks a dozen loads), each figure by the same operations in the
    same order as written out in full, so the seconds are the same to the last bit."""
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
    # Sliding/chunked layers (Gemma 3, Llama 4, gpt-oss) read only the window they keep.
    kv_tokens = cached_tokens(m, context)
    kv_seq = kv_bytes_per_token(m, p, cfg.kv_cache) * kv_tokens  # x batch: the KV bytes one step reads
    peak = (g.peak_tflops(p.compute) or g.tflops_fp16 or 1.0) * 1e12
    attn_seq = 4 * m.layers * kv_tokens * m.attention_heads * m.head_dim  # x batch: attention FLOPs
    dense = 2 * m.active_params  # x tokens: matmul FLOPs
    frac = compute_fraction or d["compute_fraction"]
    fixed = overheads(d, m.layers)
    weights = None if m.experts else weights_read(cfg, 1)  # an MoE step reads the experts its tokens touch
    split = parallelism == "layer-split"
    if split:
        # Layers run one GPU after another: capacity adds up, speed does not.
        mem_bw, compute = bw, peak * frac
        comm0 = (n - 1) * constant(cat, "layer_split_hop_us") * 1e-6
    else:
        mem_bw, compute = bw * n, peak * n * frac
        link = link_for(cat, g, n) if n > 1 else None

    def step(batch: int, tokens: float) -> tuple[float, float, float, float]:
        read = (weights if weights is not None else weights_read(cfg, batch)) + kv_seq * batch
        flops = dense * tokens + attn_seq * batch
        t_mem, t_c = read / mem_bw, flops / compute
        if split:
            comm = comm0
        elif link is None:
            comm = 0.0
        else:
            msg = tokens * m.hidden_size * 2
            comm = 2 * m.layers * (link.latency_s + 2 * msg * (n - 1) / n / (link.gbs * 1e9))
        return max(t_mem, t_c) + fixed + comm, read, t_mem, t_c

    return step


def decode(cat: Catalog, cfg: Config, engine: str, parallelism: str, batch: int,
           context: float | None = None) -> tuple[float, float, float, dict]:
    """Decode tokens/s for `batch` sequences: (rate, bytes read per step, all-reduce time, efficiency entry)."""
    d = engine_efficiency(cat, "decode", engine, cfg.gpu)
    ctx = cfg.context if context is None else context
    step, read, t_mem, t_c = step_time(cat, cfg, d, parallelism, batch, ctx)
    comm = step - max(t_mem, t_c) - overheads(d, cfg.model.layers)
    return batch / step, read, comm, d
