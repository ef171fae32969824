"""Memory: weights, KV cache, activations and training state, per GPU and in total (GiB)."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Catalog, Model, Precision
from ..core.workloads import WORKLOADS
from .config import GIB, Config
from .engines import constant

# Bits per weight of the ggml block types (ggml-common.h: block bytes x 8 / block size).
GGML_BPW = {"q2_k": 2.625, "q3_k": 3.4375, "q4_k": 4.5, "q5_k": 5.5, "q6_k": 6.5625, "q8_0": 8.5, "q5_0": 5.5,
            "q5_1": 6.0, "iq4_nl": 4.5, "iq4_xs": 4.25, "iq3_xxs": 3.0625, "iq2_xs": 2.3125}
# llama.cpp src/llama-quant.cpp llama_tensor_get_type: a K-quant (or IQ) tensor needs its row length ne[0] to be
# a multiple of the 256-weight super-block; otherwise it is stored in this fallback type.
K_FALLBACK = {"q2_k": "iq4_nl", "q3_k": "iq4_nl", "iq4_xs": "iq4_nl", "iq3_xxs": "iq4_nl", "iq2_xs": "iq4_nl",
              "q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}
QK_K = 256


def _use_more_bits(i: int, n: int) -> bool:
    # llama-quant.cpp use_more_bits: the first and last eighth of the layers and every third one between.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def ffn_down_type(ftype: str, i: int, n: int) -> str | None:
    """ggml type of layer i's ffn_down in a llama.cpp `ftype` file (llama_tensor_get_type, no imatrix),
    None for the formats without K-quant blocks."""
    if ftype == "q4_k_m":
        return "q6_k" if _use_more_bits(i, n) else "q4_k"
    if ftype == "q5_k_m":
        return "q6_k" if _use_more_bits(i, n) else "q5_k"
    if ftype == "q4_k_s":
        return "q5_k" if i < n // 8 else "q4_k"
    if ftype == "q3_k_m":
        return "q5_k" if i < n // 16 else "q4_k"
    if ftype == "q2_k":
        return "q3_k"
    if ftype == "iq4_xs":
        return "q5_k" if i < n // 8 else "iq4_xs"
    return ftype if ftype in K_FALLBACK else None


def k_fallback_bytes(model: Model, precision: Precision) -> float:
    """Extra bytes of a GGUF K-quant whose ffn_down rows (the FFN width, e.g. Qwen2.5-72B's 29568) are not a
    multiple of 256: llama.cpp stores those tensors in the larger fallback type (Q4_K -> Q5_0, Q6_K -> Q8_0 ...).
    The precision's bits_per_weight is measured on models whose widths divide (Llama, Qwen2.5-7B): only the
    difference is added. Models whose hidden size does not divide (gpt-oss: every tensor falls back) are not
    modelled here."""
    if precision.kind != "gguf" or model.hidden_size % QK_K:
        return 0.0
    n = model.layers
    moe = set(range(n - model.n_moe_layers, n)) if model.experts else set()
    extra = 0.0
    for i in range(n):
        t = ffn_down_type(precision.id, i, n)
        if t is None:
            return 0.0
        if i in moe:
            widths = [(model.expert_width, model.experts)]
            if model.shared_experts:
                widths.append((model.shared_expert_intermediate_size or model.expert_width, model.shared_experts))
        else:
            widths = [(model.intermediate_size, 1)]
        for width, count in widths:
            if width % QK_K:
                extra += count * width * model.hidden_size * (GGML_BPW[K_FALLBACK[t]] - GGML_BPW[t]) / 8
    return extra


# weight_bytes per (model, precision) object pair: the estimator asks for it a few times per candidate, and the
# GGUF fallback count walks every layer. Keyed by ids and checked by identity, as estimate/memo.py does.
_WEIGHT_BYTES: dict[tuple[int, int], tuple[Model, Precision, float]] = {}


def weight_bytes(model: Model, precision: Precision) -> float:
    """Checkpoint bytes at this precision: quantizers that skip embeddings/lm_head keep them at 16 bit;
    GGUF K-quants add the fallback-type bytes of tensors whose rows are not a multiple of 256."""
    hit = _WEIGHT_BYTES.get((id(model), id(precision)))
    if hit is not None and hit[0] is model and hit[1] is precision:
        return hit[2]
    emb = model.embedding_params
    value = ((model.params - emb) * precision.bits_per_weight / 8 + emb * precision.embedding_bits / 8
             + k_fallback_bytes(model, precision))
    if len(_WEIGHT_BYTES) > 10_000:
        _WEIGHT_BYTES.clear()
    _WEIGHT_BYTES[(id(model), id(precision))] = (model, precision, value)
    return value


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


def estimate_memory(cat: Catalog, cfg: Config, engine: str, notes: list[str] | None) -> Memory:
    """Memory of one configuration; its assumptions go to `notes` (None: not wanted, as when serving asks how many
    sequences fit: the notes are then not formatted at all)."""
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    wl = WORKLOADS[cfg.workload]
    ctx, batch = cfg.context, cfg.batch
    if wl.trains and cfg.workload != "qlora":
        # Trainable copies live in bf16 (fp32 only if asked for); master weights count as optimizer state.
        wbytes = m.params * (4 if p.id == "fp32" else 2)
    else:
        wbytes = weight_bytes(m, p)
    weights = wbytes / GIB
    grads = optim = 0.0
    rank = ap = 0
    if wl.full_weights:
        grads = m.params * 2 / GIB
        optim = m.params * 12 / GIB
    elif wl.adapters:
        rank = int(constant(cat, "lora_rank"))
        ap = lora_params(m, rank)
        grads = ap * 4 / GIB
        optim = ap * 12 / GIB

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
        per_gpu = (weights + grads + optim) / n + activations / n + overhead_per_gpu
        parallelism = "fsdp" if n > 1 else "single"
    else:
        kv = kv_bytes_per_token(m, p, cfg.kv_cache) * cached_tokens(m, ctx) * batch / GIB
        # llama.cpp and vLLM prefill in chunks; HF transformers runs the whole prompt at once.
        chunk = int(constant(cat, "prefill_ubatch_tokens"))
        ubatch = ctx * batch if engine == "transformers" else min(ctx * batch, chunk)
        inter = m.active_ffn_width
        # Transient buffers of one prefill micro-batch plus the logits of each sequence.
        activations = (ubatch * (4 * m.hidden_size + 2 * inter) * 2 + batch * m.vocab_size * 4) / GIB
        per_gpu = (weights + kv + activations) / n + overhead_per_gpu
        parallelism = "single" if n == 1 else ("layer-split" if engine.startswith("llama.cpp") else "tensor-parallel")
    total = weights + kv + grads + optim + activations + overhead_per_gpu * n
    available = g.usable_memory_gib
    if notes is not None:
        notes.extend(_memory_notes(cfg, rank, ap, checkpointing, parallelism))
    breakdown = {
        "weights": weights, "kv_cache": kv, "activations": activations, "gradients": grads,
        "optimizer": optim, "overhead": overhead_per_gpu * n, "total": total, "per_gpu": per_gpu,
        "available_per_gpu": available, "headroom_per_gpu": available - per_gpu,
    }
    return Memory(breakdown, per_gpu <= available, parallelism, checkpointing)


def _memory_notes(cfg: Config, rank: int, ap: int, checkpointing: bool, parallelism: str) -> list[str]:
    """The assumptions behind estimate_memory's figures, in words a reviewer can check."""
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    wl = WORKLOADS[cfg.workload]
    ctx, batch = cfg.context, cfg.batch
    notes = []
    if wl.trains and cfg.workload != "qlora":
        notes.append(f"{cfg.workload}: weights held in {'fp32' if p.id == 'fp32' else 'bf16'} for training")
    else:
        notes.append(
            f"weights at {p.id}: {p.bits_per_weight:g} bits/weight"
            + (f", embeddings/lm_head at {p.embedding_bits:g} bits" if p.embedding_bits != p.bits_per_weight else "")
        )
    if wl.full_weights:
        notes.append("AdamW mixed precision: bf16 gradients (2 B/param) + fp32 master, m and v (12 B/param)")
    elif wl.adapters:
        notes.append(f"LoRA rank {rank} on all linear layers: {ap / 1e6:.1f} M trainable params, fp32 adapters + AdamW")
    if wl.trains:
        notes.append(("activation checkpointing per layer" if checkpointing else "no activation checkpointing "
                      "(activations fit)") + f"; micro-batch {batch} x {ctx} tokens per GPU")
        if n > 1:
            notes.append(f"weights, gradients and optimizer state sharded over {n} GPUs (FSDP / ZeRO-3)")
    else:
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
        if n > 1:
            notes.append(f"{parallelism} over {n} GPUs: weights and KV cache divided evenly")
    if g.usable_memory_gib < g.memory_gib:
        notes.append(f"the OS lets the GPU use {g.usable_memory_gib:g} of {g.memory_gib:g} GiB unified memory")
    return notes
