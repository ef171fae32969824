"""Memory: weights, KV cache, activations and training state, per GPU and in total (GiB)."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog, Model, Precision
from ..core.workloads import WORKLOADS
from .config import GIB, Config
from .engines import constant


def weight_bytes(model: Model, precision: Precision) -> float:
    """Checkpoint bytes at this precision: quantizers that skip embeddings/lm_head keep them at 16 bit."""
    emb = model.embedding_params
    return (model.params - emb) * precision.bits_per_weight / 8 + emb * precision.embedding_bits / 8


# Bytes per cached K/V element. fp8: one byte (vLLM/TensorRT-LLM kv_cache_dtype fp8); GGUF cache types are
# ggml blocks of 32 values with one fp16 scale: q8_0 = (32 + 2) / 32, q4_0 = (16 + 2) / 32 (ggml-common.h).
KV_CACHE_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def kv_cache_dtype(precision: Precision, kv_cache: str | None = None) -> str:
    """The KV cache type: as asked, else 16-bit unless the model itself runs in FP32 (vLLM kv_cache_dtype=auto;
    llama.cpp -ctk/-ctv f16 by default)."""
    return kv_cache or ("fp32" if precision.id == "fp32" else "fp16")


def kv_bytes_per_token(model: Model, precision: Precision, kv_cache: str | None = None) -> float:
    per_elem = KV_CACHE_BYTES[kv_cache_dtype(precision, kv_cache)]
    return 2 * model.layers * model.kv_heads * model.head_dim * per_elem


def cached_tokens(model: Model, context: float) -> float:
    """KV-cache token-layers of one sequence, in full-layer units: sliding-window layers keep at most their
    window where the model type says so (Model.kv_cached_tokens), else every layer holds the whole context."""
    per_model = getattr(model, "kv_cached_tokens", None)
    return per_model(context) if per_model else float(context)


def lora_params(model: Model, rank: int) -> int:
    """Adapter parameters for rank-r LoRA on every linear layer of every block (q, k, v, o, gate, up, down)."""
    h, i = model.hidden_size, model.intermediate_size
    q = model.attention_heads * model.head_dim
    kv = model.kv_heads * model.head_dim
    pairs = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]
    return model.layers * rank * sum(a + b for a, b in pairs)


def layer_activation_bytes(model: Model, tokens: int) -> float:
    """Bytes one decoder layer keeps for backward in bf16 with FlashAttention (no s^2 score matrix):
    counted as 12h + 4 kv_dim + 8 intermediate bytes per token (Korthikanti et al. 2022, adapted to
    SwiGLU + GQA)."""
    kv_dim = model.kv_heads * model.head_dim
    inter = model.active_ffn_width  # MoE: the routed experts (and shared one) a token passes
    return tokens * (12 * model.hidden_size + 4 * kv_dim + 8 * inter)


@dataclass(frozen=True)
class Memory:
    breakdown: dict[str, float]  # GiB: weights, kv_cache, activations, gradients, optimizer, overhead, ...
    fits: bool
    parallelism: str
    checkpointing: bool


def estimate_memory(cat: Catalog, cfg: Config, engine: str, notes: list[str]) -> Memory:
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    wl = WORKLOADS[cfg.workload]
    ctx, batch = cfg.context, cfg.batch
    if wl.trains and cfg.workload != "qlora":
        # Trainable copies live in bf16 (fp32 only if asked for); master weights count as optimizer state.
        wbytes = m.params * (4 if p.id == "fp32" else 2)
        notes.append(f"{cfg.workload}: weights held in {'fp32' if p.id == 'fp32' else 'bf16'} for training")
    else:
        wbytes = weight_bytes(m, p)
        notes.append(
            f"weights at {p.id}: {p.bits_per_weight:g} bits/weight"
            + (f", embeddings/lm_head at {p.embedding_bits:g} bits" if p.embedding_bits != p.bits_per_weight else "")
        )
    weights = wbytes / GIB
    grads = optim = 0.0
    if wl.full_weights:
        grads = m.params * 2 / GIB
        optim = m.params * 12 / GIB
        notes.append("AdamW mixed precision: bf16 gradients (2 B/param) + fp32 master, m and v (12 B/param)")
    elif wl.adapters:
        rank = int(constant(cat, "lora_rank"))
        ap = lora_params(m, rank)
        grads = ap * 4 / GIB
        optim = ap * 12 / GIB
        notes.append(f"LoRA rank {rank} on all linear layers: {ap / 1e6:.1f} M trainable params, fp32 adapters + AdamW")

    overhead_per_gpu = constant(cat, "cuda_context_gib") if g.stack != "metal" else 0.0
    checkpointing = False
    if wl.trains:
        kv = 0.0
        tokens_per_gpu = ctx * batch
        logits = tokens_per_gpu * m.vocab_size * 2  # bf16 logits; the loss upcasts chunk by chunk
        full_act = (m.layers * layer_activation_bytes(m, tokens_per_gpu) + logits) / GIB
        # With checkpointing one bf16 hidden state per layer is kept and one layer is recomputed at a time.
        ckpt_act = (m.layers * tokens_per_gpu * m.hidden_size * 2 + layer_activation_bytes(m, tokens_per_gpu)
                    + logits) / GIB
        state = (wbytes / GIB + grads + optim) / n + constant(cat, "cuda_context_gib")
        # Practitioners turn checkpointing on only when the activations would not fit otherwise.
        checkpointing = state + full_act > g.usable_memory_gib
        activations = (ckpt_act if checkpointing else full_act) * n
        notes.append(("activation checkpointing per layer" if checkpointing else "no activation checkpointing "
                      "(activations fit)") + f"; micro-batch {batch} x {ctx} tokens per GPU")
        per_gpu = (weights + grads + optim) / n + activations / n + overhead_per_gpu
        parallelism = "fsdp" if n > 1 else "single"
        if n > 1:
            notes.append(f"weights, gradients and optimizer state sharded over {n} GPUs (FSDP / ZeRO-3)")
    else:
        kv = kv_bytes_per_token(m, p, cfg.kv_cache) * cached_tokens(m, ctx) * batch / GIB
        # llama.cpp and vLLM prefill in chunks; HF transformers runs the whole prompt at once.
        chunk = int(constant(cat, "prefill_ubatch_tokens"))
        ubatch = ctx * batch if engine == "transformers" else min(ctx * batch, chunk)
        inter = m.active_ffn_width
        # Transient buffers of one prefill micro-batch plus the logits of each sequence.
        activations = (ubatch * (4 * m.hidden_size + 2 * inter) * 2 + batch * m.vocab_size * 4) / GIB
        gqa = (f"GQA: {m.kv_heads} KV heads for {m.attention_heads} query heads" if m.kv_heads < m.attention_heads
               else f"no GQA: all {m.attention_heads} heads cached")
        notes.append(f"KV cache in {kv_cache_dtype(p, cfg.kv_cache)} for {ctx} tokens x batch {batch} ({gqa})")
        if m.local_attention:
            notes.append(f"{m.local_layers} of {m.layers} layers use {m.local_attention} attention over "
                         f"{m.local_window} tokens: their KV cache holds at most that many")
        if m.experts:
            notes.append(f"MoE: all {m.params / 1e9:.1f} B parameters resident; {m.active_params / 1e9:.1f} B active "
                         f"per token ({m.active_experts} of {m.experts} experts"
                         + (f" + {m.shared_experts} shared)" if m.shared_experts else ")"))
        per_gpu = (weights + kv + activations) / n + overhead_per_gpu
        parallelism = "single" if n == 1 else ("layer-split" if engine == "llama.cpp" else "tensor-parallel")
        if n > 1:
            notes.append(f"{parallelism} over {n} GPUs: weights and KV cache divided evenly")
    total = weights + kv + grads + optim + activations + overhead_per_gpu * n
    available = g.usable_memory_gib
    if g.usable_memory_gib < g.memory_gib:
        notes.append(f"the OS lets the GPU use {g.usable_memory_gib:g} of {g.memory_gib:g} GiB unified memory")
    breakdown = {
        "weights": weights, "kv_cache": kv, "activations": activations, "gradients": grads,
        "optimizer": optim, "overhead": overhead_per_gpu * n, "total": total, "per_gpu": per_gpu,
        "available_per_gpu": available, "headroom_per_gpu": available - per_gpu,
    }
    return Memory(breakdown, per_gpu <= available, parallelism, checkpointing)
