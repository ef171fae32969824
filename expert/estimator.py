"""The numeric estimator: memory, throughput, power and cost of one configuration.

Pure functions of catalog facts; no engine, no I/O. Every result carries the assumptions it used,
in words a reviewer can check. Formulas (see docs/estimator.md for the derivations):

- weights   = linear params x bits/8 + embedding params x embedding bits/8
- KV cache  = 2 x layers x kv_heads x head_dim x bytes x tokens x batch       (GQA-aware)
- decode    = bytes read per step / (bandwidth x achievable fraction) + layers x launch overhead
- prefill   = (2 x active params + attention) FLOPs per token / (peak x MFU)
- training  = (6 + recompute) x params FLOPs per token / (peak x HFU), plus exposed gradient traffic
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, Gpu, Model, Precision

GIB = float(2**30)
WORKLOADS = ("dev", "inference", "lora", "qlora", "finetune", "training")
TRAINING_WORKLOADS = ("lora", "qlora", "finetune", "training")


@dataclass(frozen=True)
class Config:
    model: Model
    gpu: Gpu
    count: int
    precision: Precision
    workload: str = "inference"
    context: int = 2048
    batch: int = 1
    engine: str | None = None  # None: the estimator picks the engine that runs this precision
    electricity_per_kwh: float = 0.11  # in `currency`
    currency: str = "USD"
    pue: float = 1.0


@dataclass
class Estimate:
    config: Config
    engine: str
    parallelism: str
    memory_gib: dict[str, float]
    fits: bool
    throughput: dict[str, float | None]
    power: dict[str, float]
    assumptions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model.id,
            "gpu": c.gpu.id,
            "count": c.count,
            "precision": c.precision.id,
            "workload": c.workload,
            "context": c.context,
            "batch": c.batch,
            "engine": self.engine,
            "parallelism": self.parallelism,
            "memory_gib": {k: round(v, 3) for k, v in self.memory_gib.items()},
            "fits": self.fits,
            "throughput": {k: (None if v is None else round(v, 2)) for k, v in self.throughput.items()},
            "power": {k: round(v, 4) for k, v in self.power.items()},
            "assumptions": list(self.assumptions),
        }


def _c(cat: Catalog, name: str) -> float:
    return float(cat.efficiency["constants"][name]["value"])


def pick_engine(gpu: Gpu, precision: Precision, workload: str) -> str:
    """The engine a practitioner would use: llama.cpp for GGUF and Apple, vLLM for serving, PyTorch to train."""
    if workload in TRAINING_WORKLOADS:
        return "pytorch"
    if precision.kind == "gguf" or gpu.stack == "metal":
        return "llama.cpp"
    return "vllm"


def engine_efficiency(cat: Catalog, section: str, engine: str, gpu: Gpu) -> dict[str, Any]:
    """Most specific calibration entry: engine-stack-architecture, then engine-stack, then vLLM's."""
    table = cat.efficiency[section]
    for key in (f"{engine}-{gpu.stack}-{gpu.architecture}", f"{engine}-{gpu.stack}", f"vllm-{gpu.stack}"):
        if key in table:
            return table[key]
    return table["vllm-cuda"]


def weight_bytes(model: Model, precision: Precision) -> float:
    """Checkpoint bytes at this precision: quantizers that skip embeddings/lm_head keep them at 16 bit."""
    emb = model.embedding_params
    return (model.params - emb) * precision.bits_per_weight / 8 + emb * precision.embedding_bits / 8


def kv_bytes_per_token(model: Model, precision: Precision) -> float:
    # KV cache stays 16-bit unless the model itself runs in FP32 (vLLM kv_cache_dtype=auto; llama.cpp f16).
    per_elem = 4 if precision.id == "fp32" else 2
    return 2 * model.layers * model.kv_heads * model.head_dim * per_elem


def lora_params(model: Model, rank: int) -> int:
    """Adapter parameters for rank-r LoRA on every linear layer of every block (q, k, v, o, gate, up, down)."""
    h, i = model.hidden_size, model.intermediate_size
    q = model.attention_heads * model.head_dim
    kv = model.kv_heads * model.head_dim
    pairs = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]
    return model.layers * rank * sum(a + b for a, b in pairs)


def _layer_activation_bytes(model: Model, tokens: int) -> float:
    """Bytes one decoder layer keeps for backward in bf16 with FlashAttention (no s^2 score matrix):
    norm inputs/outputs 4h, q/k/v h+2kv, attention output h, o-proj output h, MLP norm 2h... counted as
    12h + 4 kv_dim + 8 intermediate bytes per token (Korthikanti et al. 2022, adapted to SwiGLU + GQA)."""
    kv_dim = model.kv_heads * model.head_dim
    inter = model.intermediate_size * (model.active_experts or 1)
    return tokens * (12 * model.hidden_size + 4 * kv_dim + 8 * inter)


def _link_gbs(cat: Catalog, gpu: Gpu, count: int) -> tuple[float, str, float]:
    """Achievable one-way GPU-to-GPU bandwidth (GB/s), its kind, and small-message all-reduce latency (s)."""
    if count <= 1:
        return math.inf, "none", 0.0
    if gpu.nvlink and count > gpu.nvlink_max_gpus and gpu.segment == "datacenter":
        # Beyond one NVLink domain the slowest hop is the cluster network (one NIC per GPU).
        return _c(cat, "cluster_network_gbs_per_gpu"), "network", _c(cat, "allreduce_latency_pcie_us") * 2e-6
    if gpu.nvlink and count <= max(gpu.nvlink_max_gpus, 1):
        one_way = gpu.nvlink_gbs / 2 * _c(cat, "nvlink_efficiency")
        return one_way, "nvlink", _c(cat, "allreduce_latency_nvlink_us") * 1e-6
    lanes = gpu.pcie_lanes or 16
    gen = gpu.pcie_gen or 4
    raw = _c(cat, "pcie_gbs_per_lane_gen4") * lanes * 2 ** (gen - 4)
    gbs = raw * _c(cat, "pcie_efficiency")
    if not gpu.p2p:
        # Without peer-to-peer every transfer bounces through host memory.
        return gbs * _c(cat, "host_bounce_fraction"), "pcie-host", _c(cat, "allreduce_latency_pcie_us") * 2e-6
    return gbs, "pcie-p2p", _c(cat, "allreduce_latency_pcie_us") * 1e-6


def _unique_expert_fraction(model: Model, batch: int) -> float:
    """Share of an MoE layer's experts one decode step touches with `batch` tokens, uniform routing."""
    if not model.experts:
        return 1.0
    e, k = model.experts, model.active_experts
    return 1 - (1 - k / e) ** batch


def _decode(cat: Catalog, cfg: Config, engine: str, parallelism: str, batch: int) -> tuple[float, float, float, dict]:
    """Decode tokens/s for `batch` sequences: (rate, bytes read per step, all-reduce time, efficiency entry).

    step = max(bytes read / (bandwidth x fraction), FLOPs / (peak x fraction)) + layers x overhead + comm."""
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    d = engine_efficiency(cat, "decode", engine, g)
    bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
    emb_bytes = m.embedding_params * p.embedding_bits / 8
    body = weight_bytes(m, p) - emb_bytes
    if m.experts:
        expert_bytes = m.experts * m.params_per_expert_layer * m.layers * p.bits_per_weight / 8
        body = body - expert_bytes + expert_bytes * _unique_expert_fraction(m, batch)
    # Decode reads the lm_head, not the whole embedding table: one of the two (tied: the same) matrices.
    read = body + m.vocab_size * m.hidden_size * p.embedding_bits / 8 + kv_bytes_per_token(m, p) * cfg.context * batch
    launch = m.layers * d["layer_overhead_us"] * 1e-6
    peak = (g.peak_tflops(p.compute) or g.tflops_fp16 or 1.0) * 1e12
    compute = 2 * m.active_params * batch / (peak * n * d["compute_fraction"])
    if parallelism == "layer-split":
        # Layers run one GPU after another: capacity adds up, speed does not.
        t_mem = read / bw
        comm = (n - 1) * _c(cat, "layer_split_hop_us") * 1e-6
    else:
        t_mem = read / (bw * n)
        comm = 0.0
        if n > 1:
            link_gbs, _, link_lat = _link_gbs(cat, g, n)
            msg = batch * m.hidden_size * 2
            comm = 2 * m.layers * (link_lat + 2 * msg * (n - 1) / n / (link_gbs * 1e9))
    step = max(t_mem, compute) + launch + comm
    return batch / step, read, comm, d


def decode_rate(cat: Catalog, est: Estimate, batch: int) -> float:
    """Aggregate decode tokens/s of an estimated inference configuration at another batch size."""
    return _decode(cat, est.config, est.engine, est.parallelism, batch)[0]


def estimate(cat: Catalog, cfg: Config) -> Estimate:
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    wl = cfg.workload
    engine = pick_engine(g, p, wl) if wl in TRAINING_WORKLOADS else (cfg.engine or pick_engine(g, p, wl))
    notes: list[str] = []
    training = wl in TRAINING_WORKLOADS
    notes.append(f"memory in GiB (2^30 bytes); the {g.id}'s {g.memory_gib:g} GB is taken as {g.memory_gib:g} GiB")

    # ---------------------------------------------------------------- memory
    rank = int(_c(cat, "lora_rank"))
    ctx, batch = cfg.context, cfg.batch
    if training and wl != "qlora":
        # Trainable copies live in bf16 (fp32 only if asked for); master weights count as optimizer state.
        wbytes = m.params * (4 if p.id == "fp32" else 2)
        notes.append(f"{wl}: weights held in {'fp32' if p.id == 'fp32' else 'bf16'} for training")
    else:
        wbytes = weight_bytes(m, p)
        notes.append(
            f"weights at {p.id}: {p.bits_per_weight:g} bits/weight"
            + (f", embeddings/lm_head at {p.embedding_bits:g} bits" if p.embedding_bits != p.bits_per_weight else "")
        )
    weights = wbytes / GIB
    grads = optim = 0.0
    if wl in ("finetune", "training"):
        grads = m.params * 2 / GIB
        optim = m.params * 12 / GIB
        notes.append("AdamW mixed precision: bf16 gradients (2 B/param) + fp32 master, m and v (12 B/param)")
    elif wl in ("lora", "qlora"):
        ap = lora_params(m, rank)
        grads = ap * 4 / GIB
        optim = ap * 12 / GIB
        notes.append(f"LoRA rank {rank} on all linear layers: {ap / 1e6:.1f} M trainable params, fp32 adapters + AdamW")

    checkpointing = False
    if training:
        kv = 0.0
        tokens_per_gpu = ctx * batch
        logits = tokens_per_gpu * m.vocab_size * 2  # bf16 logits; the loss upcasts chunk by chunk
        full_act = (m.layers * _layer_activation_bytes(m, tokens_per_gpu) + logits) / GIB
        # With checkpointing one bf16 hidden state per layer is kept and one layer is recomputed at a time.
        ckpt_act = (m.layers * tokens_per_gpu * m.hidden_size * 2 + _layer_activation_bytes(m, tokens_per_gpu)
                    + logits) / GIB
        state = (wbytes / GIB + grads + optim) / n + _c(cat, "cuda_context_gib")
        # Practitioners turn checkpointing on only when the activations would not fit otherwise.
        checkpointing = state + full_act > g.usable_memory_gib
        act_per_gpu = ckpt_act if checkpointing else full_act
        activations = act_per_gpu * n
        notes.append(("activation checkpointing per layer" if checkpointing else "no activation checkpointing "
                      "(activations fit)") + f"; micro-batch {batch} x {ctx} tokens per GPU")
    else:
        kv = kv_bytes_per_token(m, p) * ctx * batch / GIB
        # llama.cpp and vLLM prefill in chunks; HF transformers runs the whole prompt at once.
        chunk = int(_c(cat, "prefill_ubatch_tokens"))
        ubatch = ctx * batch if engine == "transformers" else min(ctx * batch, chunk)
        inter = m.intermediate_size * (m.active_experts or 1)
        # Transient buffers of one prefill micro-batch plus the logits of each sequence.
        activations = (ubatch * (4 * m.hidden_size + 2 * inter) * 2 + batch * m.vocab_size * 4) / GIB
        gqa = (f"GQA: {m.kv_heads} KV heads for {m.attention_heads} query heads" if m.kv_heads < m.attention_heads
               else f"no GQA: all {m.attention_heads} heads cached")
        notes.append(f"KV cache in {'fp32' if p.id == 'fp32' else 'fp16'} for {ctx} tokens x batch {batch} ({gqa})")
    overhead_per_gpu = _c(cat, "cuda_context_gib") if g.stack != "metal" else 0.0
    overhead = overhead_per_gpu * n
    sharded = weights + kv + grads + optim + (0.0 if training else activations)
    if training:
        per_gpu = sharded / n + activations / n + overhead_per_gpu
        parallelism = "fsdp" if n > 1 else "single"
        if n > 1:
            notes.append(f"weights, gradients and optimizer state sharded over {n} GPUs (FSDP / ZeRO-3)")
    else:
        per_gpu = sharded / n + overhead_per_gpu
        parallelism = "single" if n == 1 else ("layer-split" if engine == "llama.cpp" else "tensor-parallel")
        if n > 1:
            notes.append(f"{parallelism} over {n} GPUs: weights and KV cache divided evenly")
    total = sharded + (activations if training else 0.0) + overhead
    available = g.usable_memory_gib
    if g.usable_memory_gib < g.memory_gib:
        notes.append(f"the OS lets the GPU use {g.usable_memory_gib:g} of {g.memory_gib:g} GiB unified memory")
    fits = per_gpu <= available
    memory = {
        "weights": weights, "kv_cache": kv, "activations": activations, "gradients": grads,
        "optimizer": optim, "overhead": overhead, "total": total, "per_gpu": per_gpu,
        "available_per_gpu": available, "headroom_per_gpu": available - per_gpu,
    }

    # ---------------------------------------------------------------- throughput
    link_gbs, link_kind, link_lat = _link_gbs(cat, g, n)
    decode = prefill = train = None
    if not training:
        decode, read, comm, d = _decode(cat, cfg, engine, parallelism, batch)
        bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
        notes.append(
            f"decode ({engine} on {g.stack}): {read / 1e9:.2f} GB read per step at "
            f"{d['bandwidth_fraction']:.0%} of {g.bandwidth_gbs:g} GB/s, + {d['layer_overhead_us']:g} us per layer"
            + (f", + {comm * 1e3:.2f} ms {link_kind} all-reduce" if comm and parallelism != "layer-split" else "")
        )
        pf = engine_efficiency(cat, "prefill", engine, g)
        ppeak = g.peak_tflops(p.compute if p.compute in ("fp8", "int8", "bf16", "fp32") else "fp16") or g.tflops_fp16
        ppeak = (ppeak or 1.0) * 1e12
        if pf["fp16_accumulate"] and g.segment == "consumer" and g.vendor == "nvidia" and p.compute != "fp32":
            ppeak *= _c(cat, "geforce_fp16_accumulate_factor")
        attn = 2 * m.layers * ctx * m.attention_heads * m.head_dim  # causal QK^T and AV, per token
        flops_tok = 2 * m.active_params + attn
        eff_n = 1 if parallelism == "layer-split" else n
        # Weights stream once per prompt while the GEMMs run: the slower of the two sets the pace.
        t_pf = max(flops_tok * ctx * batch / (ppeak * pf["mfu"] * eff_n), read / (bw * eff_n))
        if n > 1 and parallelism != "layer-split":
            t_pf += 2 * m.layers * (link_lat + 2 * ctx * batch * m.hidden_size * 2 * (n - 1) / n / (link_gbs * 1e9))
        prefill = ctx * batch / t_pf
        notes.append(f"prefill: {flops_tok / 1e9:.1f} GFLOP/token at {pf['mfu']:.0%} of "
                     f"{ppeak / 1e12:.0f} TFLOPS ({p.compute if p.compute != 'int8' else 'int8'} path)")
    else:
        hfu = _c(cat, "training_hfu")
        dtype = "bf16" if g.bf16 else "fp16"
        peak = (g.peak_tflops(dtype) or g.tflops_fp16 or 1.0) * 1e12
        if p.id == "fp8" and g.fp8:
            # Only the GEMMs run in FP8 (casts, attention and optimizer stay bf16): measured end-to-end
            # gain, not the 2x of the datasheet.
            peak *= _c(cat, "fp8_training_speedup")
            dtype = "fp8 GEMMs"
        attn = 6 * m.layers * ctx * m.attention_heads * m.head_dim
        if wl in ("lora", "qlora"):
            # Frozen weights need no weight gradients: backward costs one forward instead of two.
            base = 4 * m.active_params + attn * 2 / 3
        else:
            base = 6 * m.active_params + attn
        recompute = _c(cat, "recompute_flops_factor") * 2 * m.active_params if checkpointing else 0.0
        hw_flops = base + recompute
        t_compute = hw_flops * ctx * batch / (peak * hfu)
        t_comm = 0.0
        if n > 1:
            if wl in ("lora", "qlora"):
                grad_bytes = lora_params(m, rank) * 4
            elif link_kind == "network":
                # Across nodes: tensor/pipeline parallel inside the NVLink domain, data parallel between
                # nodes, so each GPU all-reduces its 1/domain share of the bf16 gradients once per step.
                grad_bytes = 2 * m.params * 2 / max(g.nvlink_max_gpus, 1)
            else:
                # FSDP inside one box: all-gather for forward and backward, reduce-scatter of gradients.
                grad_bytes = m.params * 2 * 3
            t_comm = grad_bytes * (n - 1) / n / (link_gbs * 1e9)
        exposed = max(0.0, t_comm - _c(cat, "comm_overlap") * t_compute)
        train = ctx * batch * n / (t_compute + exposed)
        notes.append(
            f"training: {hw_flops / 1e9:.0f} GFLOP/token incl. recompute at {hfu:.0%} of {peak / 1e12:.0f} "
            f"TFLOPS {dtype}" + (f"; {exposed * 1e3:.0f} ms/step exposed {link_kind} traffic" if n > 1 else "")
        )

    # ---------------------------------------------------------------- power and energy
    if training:
        frac = _c(cat, "training_power_fraction")
    elif wl == "dev":
        frac = _c(cat, "idle_power_fraction")
    else:
        frac = _c(cat, "decode_power_fraction")
    watts = g.board_power_w * n * frac
    kwh_per_hour = watts / 1000 * cfg.pue
    cost_hour = kwh_per_hour * cfg.electricity_per_kwh
    rate = train if training else decode
    per_million = cost_hour / (rate * 3600) * 1e6 if rate else 0.0
    notes.append(f"power: {frac:.0%} of {g.board_power_w:g} W board power per GPU, PUE {cfg.pue:g}, "
                 f"{cfg.electricity_per_kwh:g} {cfg.currency}/kWh")
    power = {
        "watts": watts,
        "board_power_w": g.board_power_w * n,
        "pue": cfg.pue,
        "energy_kwh_per_hour": kwh_per_hour,
        "energy_cost_per_hour": cost_hour,
        "energy_cost_per_million_tokens": per_million,
    }
    throughput = {
        "decode_tokens_per_s": decode,
        "prefill_tokens_per_s": prefill,
        "train_tokens_per_s": train,
    }
    return Estimate(cfg, engine, parallelism, memory, fits, throughput, power, notes)
