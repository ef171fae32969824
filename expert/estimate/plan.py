"""Training plans: the strategy, parallel layout, per-GPU memory, step time, time to train and launch config
that a team would actually run for one model x GPU x count (docs/estimator.md, "Training plans").

A plan is one point of a small search space: framework (DeepSpeed, torchtitan, Megatron-LM, torchtune) x
sharding (DDP, ZeRO-1/2/3, FSDP full or hybrid) x optimizer (AdamW, 8-bit AdamW, paged 8-bit AdamW) x offload
(none, optimizer, optimizer + parameters; to CPU or NVMe) x activation checkpointing (none, selective, full,
full with offload) x layout (tensor x context x pipeline x data parallel). Each point gets a memory breakdown
per GPU, a host-memory need per node and a step time from compute, pipeline bubble, the communication over
each link, and host traffic; `choose` keeps those that fit and takes the fastest, standard numerics first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from operator import attrgetter
from typing import Any

from ..catalog import Catalog
from ..core.workloads import WORKLOADS
from .config import GIB, Config, replaced
from .engines import constant, engine_efficiency, training_key
from .links import link_for, scale_up_gpus
from .memo import PLANS, Kept
from .memory import layer_activation_bytes, lora_params, weight_bytes
from .power import power

# Optimizer state bytes per trainable parameter, and whether the fp32 master copy / a full gradient buffer exist.
# adamw: fp32 master + m + v = 12 B (ZeRO paper, K = 12). adamw-8bit: fp32 master + 8-bit m and v = 4 + 2 B
# (bitsandbytes block-wise 8-bit states). paged-adamw-8bit as torchtune's single-device full fine-tune runs it:
# bf16 weights updated in place (no master), 8-bit m and v paged to host memory when the GPU runs short, and
# optimizer_in_bwd frees each gradient as soon as it is applied (no full gradient buffer).
OPTIMIZERS: dict[str, dict[str, float | bool]] = {
    "adamw": {"state": 12.0, "grad_buffer": True},
    "adamw-8bit": {"state": 6.0, "grad_buffer": True},
    "paged-adamw-8bit": {"state": 2.0, "grad_buffer": False},
}
SHARDING = ("ddp", "zero1", "zero2", "zero3", "hsdp")  # zero3 is FSDP full shard; hsdp shards in a node only
CHECKPOINTING = ("none", "selective", "full", "full+offload")
# Simpler first: on equal speed a team keeps the plain setting (ranks for tie-breaking only).
_SIMPLE = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "hsdp": 4}
_FRAMEWORK_ORDER = {"deepspeed": 0, "torchtune": 1, "torchtitan": 2, "megatron": 3}


@dataclass(frozen=True)
class Strategy:
    framework: str  # deepspeed | torchtitan | megatron | torchtune
    sharding: str  # ddp | zero1 | zero2 | zero3 | hsdp
    optimizer: str = "adamw"
    offload: str = "none"  # none | optimizer | optimizer+params
    offload_device: str = "cpu"  # cpu | nvme
    checkpointing: str = "full"
    lora_layers: float = 1.0  # share of decoder layers that carry adapters (adapter workloads)

    @cached_property
    def rank_parts(self) -> tuple[bool, int, int]:
        """What _rank_key reads of the strategy: not standard AdamW, simplicity, framework order."""
        return (self.optimizer != "adamw", _SIMPLE[self.sharding] + (self.offload != "none") * 5,
                _FRAMEWORK_ORDER[self.framework])

    @property
    def name(self) -> str:
        shard = {"zero3": "ZeRO-3" if self.framework == "deepspeed" else "FSDP", "hsdp": "HSDP (hybrid shard)",
                 "ddp": "DDP", "zero1": "ZeRO-1" if self.framework == "deepspeed" else "distributed optimizer",
                 "zero2": "ZeRO-2"}[self.sharding]
        parts = [shard]
        if self.offload != "none":
            parts.append(f"{self.offload_device.upper()} offload of {self.offload.replace('+', ' + ')}")
        if self.optimizer != "adamw":
            parts.append(self.optimizer)
        parts.append({"none": "no activation checkpointing", "selective": "selective checkpointing",
                      "full": "full checkpointing", "full+offload": "full checkpointing + activation offload"}[
                          self.checkpointing])
        return ", ".join(parts)


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    dp: int
    cp: int = 1
    micro_batch: int = 1  # sequences per micro-batch per model replica
    grad_accum: int = 1  # micro-batches per optimizer step (pipeline: micro-batches in flight)
    virtual_stages: int = 1  # interleaved pipeline stages per GPU (Megatron --num-layers-per-virtual-pipeline-stage)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def bubble(self) -> float:
        """Pipeline bubble share of the step: (p-1) / (v m + p - 1), m micro-batches, v virtual stages per GPU
        (Narayanan et al. 2021: bubble time / ideal time = (p-1) / (v m); v = 1 is plain 1F1B)."""
        p, m = self.pp, self.grad_accum
        return 0.0 if p == 1 else (p - 1) / (self.virtual_stages * m + p - 1)

    def label(self) -> str:
        return f"TP{self.tp} x CP{self.cp} x PP{self.pp} x DP{self.dp}" if self.cp > 1 else \
            f"TP{self.tp} x PP{self.pp} x DP{self.dp}"


@dataclass
class Plan:
    strategy: Strategy
    layout: Layout
    per_gpu_gib: dict[str, float]  # weights, gradients, optimizer, activations, logits, overhead, total, available
    host_gib_per_node: float
    fits: bool
    step_s: float
    tokens_per_s: float  # whole configuration, steady state
    mfu: float  # model FLOPs (6N + attention) / peak BF16, the convention of the Llama 3 and MFU tables
    comm_s: dict[str, float]  # exposed seconds per step by path: tensor, context, pipeline, data, offload
    shares: dict[str, float]  # bubble, fabric (inter-node data traffic), offload: shares of the step time
    links: dict[str, str]  # the link each parallel dimension runs over
    slowdown: float  # step time / pure-compute step time without recompute
    tokens: float | None = None
    goodput: float = 1.0
    days: float | None = None
    gpu_hours: float | None = None
    cost: dict[str, float] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    considered: list[dict[str, Any]] = field(default_factory=list)
    # A plan the estimator made for its figures alone (plan_training(worded=False)) has no notes, families
    # considered or launch config: `full` makes the same plan with them, when it is shown (detailed()).
    full: Callable[[], Plan] | None = field(default=None, repr=False, compare=False)

    def copy(self, **changes: Any) -> Plan:
        """dataclasses.replace(self, **changes) for the search's chosen plan, which the estimator copies for each
        configuration it prices (replace's __init__ and default factories cost 10 us a copy), without the
        detailed plan a copy works out for itself. Tested equal to replace."""
        return replaced(self, changes, drop=("_detailed",))

    def detailed(self) -> Plan:
        """This plan with its notes, the best of each strategy family and its launch config: the same search,
        chosen the same way, so every figure is this plan's."""
        if self.full is None:
            return self
        got = self.__dict__.get("_detailed")
        if got is None:
            got = self.__dict__["_detailed"] = self.full()
        return got

    def to_dict(self) -> dict[str, Any]:
        if self.full is not None:
            return self.detailed().to_dict()
        r = lambda v, n=3: None if v is None else round(v, n)  # noqa: E731
        lo = self.layout
        return {
            # The fields, not __dict__: a strategy caches what ranking reads of it (rank_parts) there.
            "strategy": {"name": self.strategy.name,
                         **{k: getattr(self.strategy, k) for k in Strategy.__dataclass_fields__}},
            "layout": {"tp": lo.tp, "pp": lo.pp, "dp": lo.dp, "cp": lo.cp, "micro_batch": lo.micro_batch,
                       "grad_accum": lo.grad_accum, "virtual_stages": lo.virtual_stages, "bubble": r(lo.bubble),
                       "label": lo.label(), "links": self.links},
            "per_gpu_gib": {k: r(v) for k, v in self.per_gpu_gib.items()},
            "host_gib_per_node": r(self.host_gib_per_node, 1),
            "fits": self.fits,
            "step_s": r(self.step_s), "tokens_per_s": r(self.tokens_per_s, 1), "mfu": r(self.mfu),
            "comm_s": {k: r(v, 4) for k, v in self.comm_s.items()},
            "shares": {k: r(v) for k, v in self.shares.items()},
            "slowdown": r(self.slowdown),
            "tokens": self.tokens, "goodput": r(self.goodput, 4), "days": r(self.days, 2),
            "gpu_hours": r(self.gpu_hours, 0), "cost": {k: r(v, 0) for k, v in self.cost.items()},
            "launch": self.launch, "notes": list(self.notes), "considered": self.considered,
        }


def _c(cat: Catalog, name: str) -> float:
    return constant(cat, name)


def gpus_per_node(cat: Catalog, cfg: Config) -> int:
    """GPUs of this run inside one scale-up domain (an 8-GPU server, or a whole NVL72 rack)."""
    return int(min(cfg.count, scale_up_gpus(cat, cfg.gpu)))


def _pcie_gbs(cat: Catalog, cfg: Config) -> float:
    g = cfg.gpu
    return _c(cat, "pcie_gbs_per_lane_gen4") * (g.pcie_lanes or 16) * 2 ** ((g.pcie_gen or 4) - 4) * _c(
        cat, "pcie_efficiency")


def _host(cat: Catalog, cfg: Config) -> tuple[float, float]:
    """Host memory (GiB) and achievable host DDR bandwidth (GB/s) of one node: a datacenter server (DGX-class,
    2 sockets x 8 DDR5 channels) for datacenter GPUs, the desktop host otherwise."""
    frac = _c(cat, "host_bandwidth_fraction")
    if cfg.gpu.segment == "datacenter":
        return _c(cat, "server_host_memory_gib"), _c(cat, "server_host_bandwidth_gbs") * frac
    return _c(cat, "host_memory_gib"), _c(cat, "host_memory_bandwidth_gbs") * frac


def _links(cat: Catalog, cfg: Config, lo: Layout) -> dict[str, Any]:
    """The link each dimension runs over: TP (innermost) inside the NVLink domain if it fits, then CP, then
    data parallel within the node, pipeline across nodes (outermost, the least traffic)."""
    g = cfg.gpu
    node = gpus_per_node(cat, cfg)
    inner = link_for(cat, g, lo.tp) if lo.tp > 1 else None
    cp_span = lo.tp * lo.cp
    cp_link = link_for(cat, g, cp_span if cp_span <= node else cfg.count) if lo.cp > 1 else None
    dp_span = lo.tp * lo.cp * lo.dp
    # ZeRO / FSDP shard and reduce gradients over data x context ranks: with context parallel alone (dp = 1)
    # that traffic still runs, over the link the context ranks span.
    dp_link = link_for(cat, g, dp_span if dp_span <= node else cfg.count) if lo.dp * lo.cp > 1 else None
    pp_link = link_for(cat, g, cfg.count) if lo.pp > 1 else None
    return {"tensor": inner, "context": cp_link, "data": dp_link, "pipeline": pp_link,
            "data_in_node": dp_span <= node, "shard_link": link_for(cat, g, min(node, lo.dp * lo.tp * lo.cp))}


def _allreduce_s(nbytes: float, ranks: int, gbs: float) -> float:
    """Ring all-reduce time: 2 (n-1)/n x bytes over the per-GPU bus bandwidth (NCCL busbw convention)."""
    return 0.0 if ranks <= 1 else 2 * (ranks - 1) / ranks * nbytes / (gbs * 1e9)


def _gather_s(nbytes: float, ranks: int, gbs: float) -> float:
    """Ring all-gather or reduce-scatter of a tensor of `nbytes` in total: (n-1)/n x bytes per GPU."""
    return 0.0 if ranks <= 1 else (ranks - 1) / ranks * nbytes / (gbs * 1e9)


class _Fixed:
    """What every plan of one search shares: the constants, the node, host and PCIe figures, the peak and HFU,
    the model's FLOPs per token, and each layout's terms (computed once per layout, not per strategy).
    The arithmetic is the same as computing each where it is used, so plans are unchanged."""

    def __init__(self, cat: Catalog, cfg: Config) -> None:
        m, g = cfg.model, cfg.gpu
        self.c = {k: _c(cat, k) for k in (
            "lora_rank", "reduce_bucket_elements", "stage3_max_live_parameters", "loss_chunks", "cuda_context_gib",
            "fp8_training_speedup", "training_hfu", "recompute_flops_factor", "dequant_bytes_per_param",
            "comm_overlap", "nvme_gbs_per_node", "cpu_adam_bytes_per_param")}
        self.node = gpus_per_node(cat, cfg)
        self.host_mem, self.host_bw = _host(cat, cfg)
        self.pcie = _pcie_gbs(cat, cfg)
        self.lora = lora_params(m, int(self.c["lora_rank"]))
        self.wbytes = weight_bytes(m, cfg.precision)
        dtype = "bf16" if g.bf16 else "fp16"
        self.peak16 = (g.peak_tflops(dtype) or g.tflops_fp16 or 1.0) * 1e12
        per_arch = cat.efficiency.get("training", {}).get(training_key(cat, g))
        self.hfu = per_arch["hfu"] if per_arch else self.c["training_hfu"]
        self.n_act = m.active_params
        self.attn = 6 * m.layers * cfg.context * m.attention_heads * m.head_dim
        self.qlora_bw = (g.bandwidth_gbs * 1e9 * engine_efficiency(cat, "decode", "vllm", g)["bandwidth_fraction"]
                         if cfg.workload == "qlora" else 0.0)
        self.layout_terms: dict[int, tuple[Layout, tuple]] = {}  # per layout: _layout_terms


def _layout_terms(cat: Catalog, cfg: Config, lo: Layout, fx: _Fixed) -> tuple:
    """What one layout's plans share whatever the strategy: links, shapes, activations per checkpointing
    setting, compute time per micro-batch, and the tensor / context / pipeline traffic."""
    C = fx.c
    m = cfg.model
    wl = WORKLOADS[cfg.workload]
    ctx = cfg.context
    mp = lo.tp * lo.pp  # model-parallel ranks share the weights
    links = _links(cat, cfg, lo)
    layer_params = (m.params - m.embedding_params) / m.layers / lo.tp
    tokens_mb = lo.micro_batch * ctx / lo.cp  # tokens one GPU holds activations for, per micro-batch
    layers_stage = math.ceil(m.layers / lo.pp)
    in_flight = min(lo.pp, lo.grad_accum) if lo.pp > 1 else 1  # 1F1B: the first stage holds p micro-batches
    full_layer = layer_activation_bytes(m, tokens_mb) / lo.tp  # sequence parallel divides every term by t
    hidden = tokens_mb * m.hidden_size * 2 / lo.tp  # the bf16 layer input a checkpoint keeps
    held = layers_stage * in_flight
    # Loss: bf16 logits of the micro-batch plus one fp32 chunk at a time (torchtune CEWithChunkedOutputLoss,
    # 8 chunks); only the last pipeline stage has them, and tensor parallel splits the vocabulary.
    chunks = C["loss_chunks"]
    logits = tokens_mb * m.vocab_size / lo.tp * (2 + 4 / chunks)

    peak = fx.peak16
    if cfg.precision.id == "fp8" and cfg.gpu.fp8:
        peak *= C["fp8_training_speedup"]
    hfu = fx.hfu
    n_act = fx.n_act
    attn = fx.attn
    # Per token, what MFU counts: the FLOPs the step needs. Adapters leave the base weights without gradients
    # (forward 2N + activation gradients 2N; attention likewise two of its three passes), so a LoRA step needs
    # 4N: counted at 6N its MFU read 1.5x the hardware's (over 100 % on a compute-bound plan).
    base = 4 * n_act + attn * 2 / 3 if wl.adapters else 6 * n_act + attn
    model_flops = base
    tok_replica = lo.micro_batch * ctx  # tokens of one micro-batch for one model replica
    t_ideal_mb = base * tok_replica / (lo.tp * lo.pp * lo.cp) / (peak * hfu)
    ga = lo.grad_accum
    bubble = lo.bubble
    overlap = C["comm_overlap"]
    per_ck = {}
    for ck in CHECKPOINTING:
        if ck == "none":
            act = held * full_layer
        elif ck == "selective":
            # torchtitan selective_ac_option "2": every second layer checkpointed, the others keep everything.
            act = held * (full_layer + hidden) / 2 + full_layer
        elif ck == "full":
            act = held * hidden + full_layer
        else:
            act = 2 * hidden + full_layer  # checkpoints stream to pinned host memory, two in flight
        recompute = {"none": 0.0, "selective": 0.5}.get(ck, 1.0) * C["recompute_flops_factor"] * 2 * n_act
        t_mb = (base + recompute) * tok_replica / (lo.tp * lo.pp * lo.cp) / (peak * hfu)
        if cfg.workload == "qlora":
            # NF4 weights are dequantised to bf16 for every GEMM pass (forward, recompute, backward): read
            # 4-bit, write bf16, read bf16 back; a memory-bound kernel at the streaming share of the bandwidth.
            passes = 2 + (1 if ck != "none" else 0)
            t_mb += passes * n_act / mp * C["dequant_bytes_per_param"] / fx.qlora_bw
        t_compute = ga * t_mb
        t_pipe = t_compute / (1 - bubble)
        tensor = 0.0
        if lo.tp > 1:
            # Megatron-style TP + sequence parallel: per layer 2 collectives forward, 2 backward (+2 recompute)
            # of the layer activations; on the critical path (Megatron's --tp-comm-overlap is off by default).
            colls = 4 + (2 if ck != "none" else 0)
            act_bytes = lo.micro_batch * ctx / lo.cp * m.hidden_size * 2
            tensor = ga * colls * layers_stage * _allreduce_s(act_bytes, lo.tp, links["tensor"].gbs)
        per_ck[ck] = (act, t_mb, t_compute, t_pipe, tensor)
    context = 0.0
    if lo.cp > 1:
        # Context parallel all-gathers K and V of the other ranks per layer, forward and backward (GQA: small).
        kv_bytes = lo.micro_batch * ctx * 2 * m.kv_heads * m.head_dim * 2 / lo.tp
        context = ga * 2 * layers_stage * _gather_s(kv_bytes, lo.cp, links["context"].gbs)
    pipeline = 0.0
    if lo.pp > 1:
        p2p = lo.micro_batch * ctx / lo.cp * m.hidden_size * 2 / lo.tp
        pipeline = ga * 2 * lo.virtual_stages * p2p / (links["pipeline"].gbs * 1e9) * (1 - overlap)
    link_kinds = {k: links[k].kind for k in ("tensor", "context", "data", "pipeline") if links[k] is not None}
    return (links, mp, layer_params, held, hidden, logits, peak, model_flops, tok_replica, t_ideal_mb, per_ck,
            context, pipeline, link_kinds)


def evaluate(cat: Catalog, cfg: Config, st: Strategy, lo: Layout, fx: _Fixed | None = None) -> Plan:
    """Memory, fit and step time of one strategy x layout (no search); `fx` is what a search shares."""
    if fx is None:
        fx = _Fixed(cat, cfg)
    (per_gpu, host, fits, comm, step, tps, t_ideal_mb, model_flops, links, link_kinds, t_pipe) = _measure(
        cat, cfg, st, lo, fx)
    per_gpu = dict(zip(_PER_GPU_KEYS, per_gpu, strict=True))
    comm = dict(zip(_COMM_KEYS, comm, strict=True))
    mfu = tps * model_flops / (cfg.count * fx.peak16)
    fabric = comm["data"] if not links["data_in_node"] else 0.0
    shares = {"bubble": lo.bubble * t_pipe / step, "fabric": (fabric + comm["pipeline"]) / step,
              "offload": comm["offload"] / step, "tensor": comm["tensor"] / step}
    slowdown = step / (lo.grad_accum * t_ideal_mb)
    return Plan(st, lo, per_gpu, host / GIB, fits, step, tps, mfu, comm, shares, dict(link_kinds), slowdown,
                notes=[])


_PER_GPU_KEYS = ("weights", "gradients", "optimizer", "activations", "logits", "overhead", "total", "available")
_COMM_KEYS = ("tensor", "context", "pipeline", "data", "offload")


def _measure(cat: Catalog, cfg: Config, st: Strategy, lo: Layout, fx: _Fixed) -> tuple:
    """One strategy x layout's numbers: per-GPU memory (GiB, in _PER_GPU_KEYS order), host bytes per node, fit,
    exposed seconds per path (_COMM_KEYS order), step seconds and tokens/s, and what evaluate derives the rest
    from. A search scores every plan with these alone and builds a Plan only for those it reports (choose)."""
    # Keyed by the Layout object (one per layout in a search; hashing its fields costs more than the lookup).
    hit = fx.layout_terms.get(id(lo))
    if hit is None or hit[0] is not lo:
        hit = fx.layout_terms[id(lo)] = (lo, _layout_terms(cat, cfg, lo, fx))
    terms = hit[1]
    (links, mp, layer_params, held, hidden, logits, peak, model_flops, tok_replica, t_ideal_mb, per_ck,
     context, pipeline, link_kinds) = terms
    ck = st.checkpointing
    act, t_mb, t_compute, t_pipe, tensor = per_ck[ck]
    C = fx.c
    m, g = cfg.model, cfg.gpu
    wl = WORKLOADS[cfg.workload]
    node = fx.node
    opt = OPTIMIZERS[st.optimizer]
    d = lo.dp * lo.cp  # ZeRO/FSDP shard over data x context ranks (torchtitan and Megatron do the same)
    shard = d if st.sharding != "hsdp" else max(1, min(d, node // (lo.tp * lo.cp)))

    # --- memory per GPU -------------------------------------------------------------------------------
    if wl.adapters:
        base = fx.wbytes if cfg.workload == "qlora" else m.params * 2.0
        trainable = fx.lora * st.lora_layers
        state_b = 16.0  # fp32 adapter + fp32 grad + AdamW m, v: adapters are small, kept in fp32
        w_gpu = base / mp / (shard if st.sharding in ("zero3", "hsdp") else 1)
        adapter = trainable * state_b / mp / (shard if st.sharding != "ddp" else 1)
        grads, optim, weights = 0.0, adapter, w_gpu
    else:
        wb = 4.0 if cfg.precision.id == "fp32" else 2.0
        per_rank = m.params / mp
        sharded_w = st.sharding in ("zero3", "hsdp")
        weights = per_rank * wb / (shard if sharded_w else 1)
        grads = per_rank * 2.0 / (shard if st.sharding in ("zero2", "zero3", "hsdp") else 1) if opt["grad_buffer"] \
            else 0.0
        optim = per_rank * opt["state"] / (shard if st.sharding != "ddp" else 1)
        if st.offload != "none":
            # Optimizer offload: states live in host memory and the gradients stream to it through one
            # reduce bucket (DeepSpeed reduce_bucket_size, torch FSDP CPUOffload likewise keeps grads on CPU).
            optim = 0.0
            grads = min(grads, C["reduce_bucket_elements"] * 2.0)
        if st.offload == "optimizer+params":
            weights = 0.0
    gathered = 0.0
    if st.sharding in ("zero3", "hsdp") and shard > 1 or st.offload == "optimizer+params":
        # The layer being computed and the one prefetched are materialised in full (FSDP); DeepSpeed caps the
        # resident gathered parameters at stage3_max_live_parameters.
        live = 2 * layer_params
        if st.framework == "deepspeed":
            live = min(live, C["stage3_max_live_parameters"])
        gathered = live * (fx.wbytes / m.params if cfg.workload == "qlora" else 2.0)
    weights += gathered
    overhead = C["cuda_context_gib"] * GIB if g.stack != "metal" else 0.0
    w_g, g_g, o_g, a_g, l_g, ov_g = (weights / GIB, grads / GIB, optim / GIB, act / GIB, logits / GIB,
                                     overhead / GIB)
    total = sum((w_g, g_g, o_g, a_g, l_g, ov_g))  # sum() in this order: the figures of the per-GPU dict
    available = g.usable_memory_gib
    paged_overflow = 0.0
    if st.optimizer == "paged-adamw-8bit" and total > available:
        # Paged optimizer states move to host memory under pressure (CUDA unified memory pages).
        paged_overflow = min(o_g, total - available)
        o_g -= paged_overflow
        total -= paged_overflow
    per_gpu = (w_g, g_g, o_g, a_g, l_g, ov_g, total, available)

    host_mem, host_bw = fx.host_mem, fx.host_bw
    gpus_node = node
    host = 0.0
    if st.offload != "none":
        # Host keeps fp32 master + states + an fp32 gradient copy for the CPU Adam step, per GPU's shard.
        shard_params = (m.params / mp) / shard
        host = shard_params * (opt["state"] + 4.0) * gpus_node
        if st.offload == "optimizer+params":
            host += shard_params * 2.0 * gpus_node
        if st.offload_device == "nvme":
            host = C["reduce_bucket_elements"] * 2.0 * 4 * gpus_node  # pinned swap buffers only
    if ck == "full+offload":
        host += held * hidden * gpus_node
    host += paged_overflow * GIB * gpus_node
    fits = total <= available and host / GIB <= host_mem

    # --- step time (compute and the tensor / context / pipeline traffic are the layout's) ----------------
    ga = lo.grad_accum
    overlap = C["comm_overlap"]
    data = offload = 0.0
    grad_elems = (fx.lora * st.lora_layers if wl.adapters else m.params) / mp
    if d > 1:
        dl = links["data"]
        if st.sharding in ("zero3", "hsdp") and not wl.adapters:
            # FSDP / ZeRO-3: all-gather forward and backward, reduce-scatter gradients, every micro-batch.
            inner = shard
            per_mb = 3 * _gather_s(grad_elems * 2.0, inner, (links["shard_link"] if st.sharding == "hsdp"
                                                            else dl).gbs)
            exposed = ga * max(0.0, per_mb - overlap * t_mb)
            if st.sharding == "hsdp" and d > inner:
                exposed += max(0.0, _allreduce_s(grad_elems * 2.0 / inner, d // inner, dl.gbs) - overlap * t_mb)
            data = exposed
        else:
            # DDP / ZeRO-1/2 / Megatron distributed optimizer / adapters: one gradient reduction (+ parameter
            # all-gather) per step, overlapped with the last micro-batch's backward.
            per_step = _allreduce_s(grad_elems * 2.0, d, dl.gbs)
            data = max(0.0, per_step - overlap * t_mb)
    if st.offload != "none":
        # CPU Adam streams every state through host memory once per step; gradients go down and updated
        # bf16 parameters come back over PCIe (and through the same host memory).
        shard_params = (m.params / mp) / shard
        pcie = fx.pcie * 1e9
        per_gpu_pcie = shard_params * 4.0
        if st.offload == "optimizer+params":
            per_gpu_pcie += ga * shard_params * 2.0 * (3 if ck != "none" else 2)  # fetch per pass
        if st.offload_device == "nvme":
            t_states = 2 * shard_params * (opt["state"] + 4.0) * gpus_node / (C["nvme_gbs_per_node"] * 1e9)
        else:
            t_states = shard_params * C["cpu_adam_bytes_per_param"] * gpus_node / (host_bw * 1e9)
        t_pcie = max(per_gpu_pcie / pcie, per_gpu_pcie * gpus_node / (host_bw * 1e9))
        offload = t_states + max(0.0, t_pcie - overlap * t_compute)
    if ck == "full+offload":
        t_act = ga * 2 * held * hidden / (fx.pcie * 1e9)
        offload += max(0.0, t_act - overlap * t_compute)
    if paged_overflow:
        offload += 2 * paged_overflow * GIB / (fx.pcie * 1e9)
    step = t_pipe + sum((tensor, context, pipeline, data, offload))  # sum() in the order of the comm dict
    tokens_step = lo.dp * ga * tok_replica
    tps = tokens_step / step
    return (per_gpu, host, fits, (tensor, context, pipeline, data, offload), step, tps, t_ideal_mb, model_flops,
            links, link_kinds, t_pipe)


def plan_memory(cat: Catalog, cfg: Config, p: Plan) -> Any:
    """The estimator's Memory for a training config, from its plan: weights / gradients / optimizer stay the
    model's whole training state (what sharding divides), activations and overhead are summed over the GPUs,
    per_gpu / fits are the plan's."""
    from .memory import Memory

    m, n = cfg.model, cfg.count
    wl = WORKLOADS[cfg.workload]
    st = p.strategy
    if wl.adapters:
        base = weight_bytes(m, cfg.precision) if cfg.workload == "qlora" else m.params * 2.0
        ap = lora_params(m, int(_c(cat, "lora_rank"))) * st.lora_layers
        weights, grads, optim = base / GIB, ap * 4 / GIB, ap * 12 / GIB
    else:
        opt = OPTIMIZERS[st.optimizer]
        weights = m.params * (4.0 if cfg.precision.id == "fp32" else 2.0) / GIB
        grads = m.params * 2.0 / GIB if opt["grad_buffer"] else 0.0
        optim = m.params * opt["state"] / GIB
    g = p.per_gpu_gib
    act = (g["activations"] + g["logits"]) * n
    overhead = g["overhead"] * n
    total = weights + grads + optim + act + overhead
    breakdown = {"weights": weights, "kv_cache": 0.0, "activations": act, "gradients": grads, "optimizer": optim,
                 "overhead": overhead, "total": total, "per_gpu": g["total"], "available_per_gpu": g["available"],
                 "headroom_per_gpu": g["available"] - g["total"], "host_per_node": p.host_gib_per_node}
    if n == 1:
        par = "single"
    elif p.layout.tp > 1:
        par = "tensor-parallel"
    else:
        par = "fsdp" if st.sharding in ("zero2", "zero3", "hsdp") else "data-parallel"
    return Memory(breakdown, p.fits, par, st.checkpointing != "none")


def _pow2_upto(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def interleave(layers: int, pp: int) -> int:
    """Virtual pipeline stages per GPU: one layer per virtual stage, the deepest interleaving Megatron-LM
    (--num-layers-per-virtual-pipeline-stage 1) and torchtitan (Interleaved1F1B) run; it shrinks the bubble
    v-fold at v times the point-to-point traffic."""
    return 1 if pp <= 1 else max(1, layers // pp)


def layouts(cat: Catalog, cfg: Config, global_tokens: float) -> list[Layout]:
    """Candidate layouts: TP up to the NVLink domain (or the node over PCIe), CP for long sequences, PP only
    across nodes, DP for the rest; gradient accumulation sized to the global batch. Layouts with more data
    parallel than the largest published batch allows are left out (see _layouts)."""
    return list(_layouts(cat, cfg, global_tokens)[0])


# The layouts of a search read the model's shape, the GPU count and node, the sequence, the micro-batch and the
# global batch: the same for every GPU type, precision and price basis of a sweep that shares them (a training
# request searches some 50 configurations, each building up to two dozen Layouts). Layout is frozen: shared.
_LAYOUTS = Kept(4_000)


def _layouts(cat: Catalog, cfg: Config, global_tokens: float) -> tuple[tuple[Layout, ...], tuple[Layout, ...]]:
    """The layouts within the batch limit, and those over it (over_batch)."""
    node = gpus_per_node(cat, cfg)
    return _LAYOUTS.get(cat, cfg.model, (cfg.count, node, cfg.context, cfg.batch, global_tokens),
                        lambda: _make_layouts(cat, cfg, node, global_tokens))


def _make_layouts(cat: Catalog, cfg: Config, node: int,
                  global_tokens: float) -> tuple[tuple[Layout, ...], tuple[Layout, ...]]:
    m, n = cfg.model, cfg.count
    out: list[Layout] = []
    over: list[Layout] = []
    for tp in _pow2_upto(min(node, 8)):
        if m.attention_heads % tp or (m.kv_heads % tp and tp > m.kv_heads):
            continue
        for cp in (_pow2_upto(16) if cfg.context >= 32768 else [1]):
            for pp in (_pow2_upto(32) if n > node else [1]):
                if pp > m.layers // 2 and pp > 1:
                    continue
                mpar = tp * cp * pp
                if n % mpar:
                    continue
                dp = n // mpar
                mb = cfg.batch
                ga = max(1, math.ceil(global_tokens / (dp * mb * cfg.context)))
                lo = Layout(tp, pp, dp, cp, mb, ga, interleave(m.layers, pp))
                (over if over_batch(cat, cfg, lo, global_tokens) else out).append(lo)
    return tuple(out), tuple(over)


def over_batch(cat: Catalog, cfg: Config, lo: Layout, global_tokens: float) -> bool:
    """One step of this layout holds more tokens than the global batch and the largest published one."""
    return lo.dp * lo.micro_batch * cfg.context > max(global_tokens, _c(cat, "max_global_batch_tokens"))


_STRATEGIES: dict[tuple[bool, bool, bool, bool], list[Strategy]] = {}


def strategies(cat: Catalog, cfg: Config, lo: Layout) -> list[Strategy]:
    """What each framework can run on this layout (DeepSpeed ZeRO without model parallel; torchtitan FSDP/HSDP
    with TP/PP/CP; Megatron distributed optimizer with TP/PP/CP; torchtune single-device and FSDP recipes).

    The list depends only on four yes/no facts of the configuration and layout, so it is built once per
    combination (Strategy is frozen: the lists are shared, and callers do not change them)."""
    key = (WORKLOADS[cfg.workload].adapters, cfg.count == 1, lo.tp == lo.pp == lo.cp == 1,
           cfg.count <= gpus_per_node(cat, cfg))
    hit = _STRATEGIES.get(key)
    if hit is None:
        hit = _STRATEGIES[key] = _strategies(cfg, lo, key[3])
    return hit


def _strategies(cfg: Config, lo: Layout, within_node: bool) -> list[Strategy]:
    wl = WORKLOADS[cfg.workload]
    single = cfg.count == 1
    out: list[Strategy] = []
    cks = ("none", "selective", "full")
    if lo.tp == lo.pp == lo.cp == 1:
        for shard in (("ddp",) if single else ("ddp", "zero1", "zero2", "zero3")):
            for ck in ("none", "full"):
                for optim in ("adamw", "adamw-8bit") if not wl.adapters else ("adamw",):
                    out.append(Strategy("deepspeed", shard, optim, checkpointing=ck))
                if wl.adapters:
                    continue
                offloads = [("optimizer", dev) for dev in ("cpu", "nvme")] if shard != "ddp" else []
                if shard == "zero3":
                    offloads += [("optimizer+params", dev) for dev in ("cpu", "nvme")]
                for off, dev in offloads:
                    out.append(Strategy("deepspeed", shard, "adamw", off, dev, ck))
        for ck in ("full", "full+offload"):
            if single:
                if not wl.adapters:
                    out.append(Strategy("torchtune", "ddp", "paged-adamw-8bit", checkpointing=ck))
                else:
                    out.append(Strategy("torchtune", "ddp", checkpointing=ck))
            else:
                out.append(Strategy("torchtune", "zero3", checkpointing=ck))
                if not wl.adapters:
                    out.append(Strategy("torchtune", "zero3", "adamw", "optimizer+params", "cpu", ck))
    if wl.adapters:
        return out
    if not single:
        for shard in ("zero3", "hsdp", "ddp"):
            if shard == "hsdp" and within_node:
                continue
            for ck in cks:
                out.append(Strategy("torchtitan", shard, checkpointing=ck))
        for ck in cks:
            out.append(Strategy("megatron", "zero1", checkpointing=ck))
    return out


def _key(p: Plan) -> tuple:
    return _rank_key(p.strategy, p.fits, p.tokens_per_s)


_LOG_STEP = math.log(1.02)


def _rank_key(st: Strategy, fits: bool, tokens_per_s: float) -> tuple:
    # Speed in 2 % steps: plans within one step count as equally fast and the simpler one wins.
    speed = -round(math.log(max(tokens_per_s, 1e-9)) / _LOG_STEP)
    adamw, simple, framework = st.rank_parts
    return (not fits, adamw, speed, simple, framework)


class Scored:
    """One strategy x layout of a search, scored (fit, speed, the per-GPU and host memory it reports) without
    building its Plan: a search weighs dozens and reports a few (Scored.plan builds one, same numbers)."""
    __slots__ = ("strategy", "layout", "fits", "tokens_per_s", "per_gpu_total", "host_gib_per_node", "key")

    def __init__(self, st: Strategy, lo: Layout, measured: tuple) -> None:
        per_gpu, host, fits, _, _, tps = measured[:6]
        self.strategy, self.layout, self.fits, self.tokens_per_s = st, lo, fits, tps
        self.per_gpu_total, self.host_gib_per_node = per_gpu[6], host / GIB
        self.key = _rank_key(st, fits, tps)

    def plan(self, cat: Catalog, cfg: Config, fx: _Fixed) -> Plan:
        return evaluate(cat, cfg, self.strategy, self.layout, fx)


def choose(cat: Catalog, cfg: Config, global_tokens: float | None = None,
           constraint: dict[str, Any] | None = None) -> tuple[Plan, list[Plan]]:
    """The fastest plan that fits (standard AdamW numerics before 8-bit states, then speed in 2 % steps, then
    the simpler setting); `constraint` pins strategy or layout fields (e.g. a published run's TP/PP). Every
    plan of the search, best first (see _scored for the search itself)."""
    fx, scored = _scored(cat, cfg, global_tokens, constraint)
    return scored[0].plan(cat, cfg, fx), [s.plan(cat, cfg, fx) for s in scored]


def _scored(cat: Catalog, cfg: Config, global_tokens: float | None,
            constraint: dict[str, Any] | None) -> tuple[_Fixed, list[Scored]]:
    """Every strategy x layout the search weighs, scored and sorted by _rank_key (stable: ties keep the
    order they were weighed in)."""
    wl = WORKLOADS[cfg.workload]
    global_tokens = _global_tokens(cat, cfg, global_tokens)
    constraint = constraint or {}
    lay_fix = {k: v for k, v in constraint.items() if k in Layout.__dataclass_fields__}
    st_fix = {k: v for k, v in constraint.items() if k in Strategy.__dataclass_fields__}
    fx = _Fixed(cat, cfg)

    def weigh(los: Sequence[Layout]) -> list[Scored]:
        plans = []
        for lo in los:
            if lay_fix and any(getattr(lo, k) != v for k, v in lay_fix.items()):
                continue
            for st in strategies(cat, cfg, lo) if not {"framework", "sharding"} <= set(st_fix) else [
                    Strategy(**st_fix)]:
                if st_fix and any(getattr(st, k) != v for k, v in st_fix.items()):
                    continue
                if wl.adapters and st.lora_layers != constraint.get("lora_layers", 1.0):
                    st = replace(st, lora_layers=constraint["lora_layers"])
                plans.append(Scored(st, lo, _measure(cat, cfg, st, lo, fx)))
        return plans

    if {"tp", "pp", "dp"} <= set(lay_fix):
        plans = weigh([Layout(**{"cp": 1, "micro_batch": cfg.batch, "grad_accum": 1,
                                 "virtual_stages": interleave(cfg.model.layers, lay_fix.get("pp", 1)), **lay_fix})])
    else:
        within, over = _layouts(cat, cfg, global_tokens)
        plans = weigh(within)
        if not plans:
            # Every layout a framework runs puts more tokens in a step than any published run (a long micro-batch
            # over many data-parallel ranks): the fewest ranks that can run are weighed, and the plan says so
            # (_why), rather than no plan at all. With such micro-batches it rarely fits.
            for dp in sorted({lo.dp for lo in over}):
                plans = weigh([lo for lo in over if lo.dp == dp])
                if plans:
                    break
    if not plans:
        raise ValueError(f"no training layout for {cfg.count} GPUs with {constraint}")
    plans.sort(key=attrgetter("key"))
    return fx, plans


def _weighed_layouts(cat: Catalog, cfg: Config, global_tokens: float) -> Sequence[Layout]:
    """The layouts an unconstrained search weighs (as _scored: those within the batch limit, else the fewest
    data-parallel ranks over it that some framework runs)."""
    within, over = _layouts(cat, cfg, global_tokens)
    if any(strategies(cat, cfg, lo) for lo in within):
        return within
    for dp in sorted({lo.dp for lo in over}):
        los = [lo for lo in over if lo.dp == dp]
        if any(strategies(cat, cfg, lo) for lo in los):
            return los
    return []


# A bound below every plan's step time, relatively: the sums of the exposed seconds are not added up in the
# bound's order (and sum() may compensate), which moves a float by a few parts in 10^16, far below this.
_BOUND_SLACK = 1 - 1e-9


def _best(cat: Catalog, cfg: Config) -> Plan:
    """The plan an unconstrained search chooses (_search's first), measuring only the points that could beat the
    best found so far. Each point's rank key is bounded from below before it is measured: it may fit unless its
    activations, logits and CUDA context alone exceed the GPU, and it is at most as fast as its layout's compute,
    bubble and tensor / context / pipeline traffic allow at its checkpointing (the data-parallel and offload
    seconds a strategy adds are never negative). Points are measured from the most promising bound on, and the
    search stops at the first bound that cannot beat the best (ties go to the point weighed first, as the stable
    sort of _scored has it), so the chosen plan is _search's to the last bit: the same _measure and evaluate of
    the same point."""
    fx = _Fixed(cat, cfg)
    overhead = fx.c["cuda_context_gib"] * GIB if cfg.gpu.stack != "metal" else 0.0
    points: list[tuple[Strategy, Layout]] = []
    bounds: list[tuple[tuple, int]] = []
    for lo in _weighed_layouts(cat, cfg, _global_tokens(cat, cfg, None)):
        sts = strategies(cat, cfg, lo)
        if not sts:
            continue
        terms = _layout_terms(cat, cfg, lo, fx)
        fx.layout_terms[id(lo)] = (lo, terms)
        tokens_step = lo.dp * lo.grad_accum * terms[8]
        traffic = max(terms[11], 0.0) + max(terms[12], 0.0)  # context, pipeline
        speed: dict[str, int] = {}
        over: dict[str, bool] = {}
        for ck, (act, _, _, t_pipe, tensor) in terms[10].items():
            fastest = (t_pipe + max(tensor, 0.0) + traffic) * _BOUND_SLACK
            speed[ck] = _rank_key(sts[0], True, tokens_step / fastest if fastest > 0 else math.inf)[2]
            # Whatever a strategy shards or offloads, a GPU holds its activations, its logits and its context.
            over[ck] = (act + terms[5] + overhead) / GIB * _BOUND_SLACK > cfg.gpu.usable_memory_gib
        for st in sts:
            adamw, simple, framework = st.rank_parts
            ck = st.checkpointing
            bounds.append(((over[ck], adamw, speed[ck], simple, framework), len(points)))
            points.append((st, lo))
    if not points:
        raise ValueError(f"no training layout for {cfg.count} GPUs with {{}}")
    bounds.sort()
    best: tuple | None = None
    for bound in bounds:
        if best is not None and bound >= best:
            break
        st, lo = points[bound[1]]
        got = (Scored(st, lo, _measure(cat, cfg, st, lo, fx)).key, bound[1])
        if best is None or got < best:
            best = got
    st, lo = points[best[1]]
    return evaluate(cat, cfg, st, lo, fx)


def _global_tokens(cat: Catalog, cfg: Config, given: float | None) -> float:
    if given is not None:
        return given
    return _c(cat, "pretrain_global_batch_tokens" if cfg.workload == "training" else "finetune_global_batch_tokens")


def goodput(cat: Catalog, gpus: int) -> float:
    """Share of wall time spent on useful training: interruptions grow with the GPU count. Llama 3 405B lost
    under 10 % on 16,384 GPUs (466 interruptions in 54 days); the lost share scales with GPUs at the same
    per-GPU failure rate and time lost per interruption."""
    ref_gpus, ref = _c(cat, "reliability_reference_gpus"), _c(cat, "reliability_reference_goodput")
    return max(0.5, 1 - (1 - ref) * gpus / ref_gpus)


def _launch(cat: Catalog, cfg: Config, p: Plan) -> dict[str, Any]:
    from .launch import launch_for  # launch snippets are data-shaped; kept apart from the arithmetic

    return launch_for(cat, cfg, p)


def plan_training(cat: Catalog, cfg: Config, tokens: float | None = None, *, global_batch_tokens: float | None = None,
                  constraint: dict[str, Any] | None = None, worded: bool = True) -> Plan:
    """The plan a team would run for this model x GPU x count: strategy, layout, per-GPU memory, speed, and for
    `tokens` the days, GPU-hours and cost, plus a launch config for the chosen framework.

    `worded=False` (the estimator, which weighs hundreds of configurations and shows a few): the same plan
    found by a bounded search (_best) without its notes, the families considered and the launch config;
    Plan.detailed() and to_dict() work them out when asked."""
    wl = WORKLOADS[cfg.workload]
    if not wl.trains:
        raise ValueError(f"plan_training: {cfg.workload} does not train")
    if global_batch_tokens is None and constraint is None:
        # The search depends on neither prices nor electricity: one per model x GPU x count x precision x
        # workload x context x batch for a whole sweep (memo.py), kept small (the chosen plan, the summary of
        # the others and the runner-up layout, not every plan evaluated). The chosen plan is copied before it
        # is given tokens, goodput and notes.
        key_cfg = _search_config(cat, cfg)
        if not worded:
            p = PLANS.get(cat, key_cfg, ("best",), lambda: _best(cat, key_cfg))
            p = p.copy(notes=[], cost={}, full=lambda: plan_training(cat, cfg, tokens))
            _priced(cat, cfg, p, tokens)
            return p
        best, considered, alt = PLANS.get(cat, key_cfg, ("choose",), lambda: _search(cat, key_cfg, None, None))
    else:
        best, considered, alt = _search(cat, cfg, global_batch_tokens, constraint)
    p = replace(best, notes=list(best.notes), cost=dict(best.cost))
    _priced(cat, cfg, p, tokens)
    p.considered = considered
    p.notes = _why(cat, cfg, p, _global_tokens(cat, cfg, global_batch_tokens)) + [_layout_reason(cat, cfg, alt, p)] \
        + p.notes
    p.launch = _launch(cat, cfg, p)
    return p


def _priced(cat: Catalog, cfg: Config, p: Plan, tokens: float | None) -> None:
    """The plan's goodput at its GPU count and, for `tokens`, the run's days, GPU-hours and cost."""
    p.goodput = goodput(cat, cfg.count)
    if tokens:
        p.tokens = float(tokens)
        wall_s = tokens / (p.tokens_per_s * p.goodput)
        p.days = wall_s / 86400
        p.gpu_hours = wall_s / 3600 * cfg.count
        # GPUs at the training load plus the host around them (power.py): what the run's meter reads.
        watts = power(cat, cfg, None, None)["watts"]
        kwh = watts / 1000 * wall_s / 3600 * cfg.pue
        p.cost = {"energy_kwh": kwh, "energy_cost": kwh * cfg.electricity_per_kwh}
        if cfg.gpu.rent_usd_per_hour:
            p.cost["rent_usd"] = p.gpu_hours * cfg.gpu.rent_usd_per_hour
        p.cost["buy_usd"] = cfg.gpu.price_usd * cfg.count


def _search_config(cat: Catalog, cfg: Config) -> Config:
    """The configuration a plan search is keyed and run with. The search reads the precision only as fp32
    (4-byte weights), FP8 on a GPU with FP8 units (the faster peak) and, for QLoRA, the quantised weight bytes;
    every other precision searches as bf16, so FP8 on a GPU without FP8 and fp16 share bf16's search. Engine
    and KV cache do not apply to training."""
    p = cfg.precision
    canon = cat.precisions.get("bf16")
    same = cfg.workload == "qlora" or p.id == "fp32" or (p.id == "fp8" and cfg.gpu.fp8) or canon is None
    if same and cfg.engine is None and cfg.kv_cache is None:
        return cfg
    return cfg.but(precision=p if same else canon, engine=None, kv_cache=None)


def _search(cat: Catalog, cfg: Config, global_tokens: float | None,
            constraint: dict[str, Any] | None) -> tuple[Plan, list[dict[str, Any]], Plan | None]:
    """The chosen plan, the best of each strategy family (to say why it won) and the fastest fitting plan
    with another layout."""
    fx, allp = _scored(cat, cfg, global_tokens, constraint)
    first = allp[0]
    label = first.layout.label()
    alt = next((q for q in allp if q.fits and q.layout.label() != label), None)
    return (first.plan(cat, cfg, fx), _considered(allp, first), alt.plan(cat, cfg, fx) if alt is not None
            else None)


def _layout_reason(cat: Catalog, cfg: Config, alt: Plan | None, best: Plan) -> str:
    """Why this layout: the scale-up domains the GPUs span, and the fastest fitting plan with another layout."""
    domain = scale_up_gpus(cat, cfg.gpu)
    nodes = max(1, -(-cfg.count // domain))
    where = (f"{cfg.count} GPUs in one {best.links.get('data') or best.links.get('tensor') or 'local'} domain"
             if nodes == 1 else f"{cfg.count} GPUs span {nodes} nodes of {min(domain, cfg.count)}")
    if cfg.count == 1:
        return "layout: one GPU, nothing to split"
    if alt is None:
        return f"layout: {where}; no other layout fits"
    slower = best.tokens_per_s / alt.tokens_per_s - 1 if alt.tokens_per_s else float("inf")
    return (f"layout: {where}; the fastest other layout that fits, {alt.layout.label()} with {alt.strategy.name}, "
            f"is {slower:.0%} slower" + (" (within 2 %: the simpler plan wins)" if slower < 0.02 else ""))


def _considered(allp: list[Scored], best: Scored) -> list[dict[str, Any]]:
    """The best plan of each sharding x offload family, to say why the chosen one won."""
    seen: dict[tuple, Scored] = {}
    for q in allp:
        k = (q.strategy.framework, q.strategy.sharding, q.strategy.offload, q.strategy.optimizer)
        if k not in seen:
            seen[k] = q
    out = []
    for q in list(seen.values())[:12]:
        out.append({"strategy": q.strategy.name, "framework": q.strategy.framework, "layout": q.layout.label(),
                    "per_gpu_gib": round(q.per_gpu_total, 1), "fits": q.fits,
                    "host_gib_per_node": round(q.host_gib_per_node, 0),
                    "tokens_per_s": round(q.tokens_per_s, 0), "chosen": q is best})
    return out


def _why(cat: Catalog, cfg: Config, p: Plan, global_tokens: float) -> list[str]:
    st, lo, mem = p.strategy, p.layout, p.per_gpu_gib
    out = [f"strategy: {st.name} on {st.framework}; layout {lo.label()}, micro-batch {lo.micro_batch} x "
           f"{cfg.context} tokens, {lo.grad_accum} micro-batches per step"]
    wl = WORKLOADS[cfg.workload]
    if over_batch(cat, cfg, lo, global_tokens):
        tokens_step = lo.dp * lo.micro_batch * cfg.context
        out.append(f"every layout of {cfg.count} GPUs takes more tokens per step than the largest published batch "
                   f"({_c(cat, 'max_global_batch_tokens'):,.0f}, Llama 3 405B): {lo.dp} data-parallel ranks x "
                   f"micro-batch {lo.micro_batch} x {cfg.context} tokens = {tokens_step:,.0f}")
    if wl.adapters:
        rank = int(_c(cat, "lora_rank"))
        share = "all" if st.lora_layers >= 1 else f"{st.lora_layers:.0%} of the"
        out.append(f"LoRA rank {rank} on the linear layers of {share} decoder layers: "
                   f"{lora_params(cfg.model, rank) * st.lora_layers / 1e6:.1f} M trainable params, fp32 adapters "
                   f"+ AdamW (16 B per trainable param)")
    else:
        out.append({"adamw": "AdamW mixed precision: bf16 gradients (2 B/param) + fp32 master, m and v (12 B/param)",
                    "adamw-8bit": "8-bit AdamW (bitsandbytes): bf16 gradients (2 B/param) + fp32 master and 8-bit m, "
                                  "v (6 B/param)",
                    "paged-adamw-8bit": "paged 8-bit AdamW with the optimizer step in the backward pass: bf16 "
                                        "weights updated in place, 8-bit m and v (2 B/param), no gradient buffer"}
                   [st.optimizer])
    if not p.fits:
        out.append(f"nothing fits: the smallest plan needs {mem['total']:.1f} of {mem['available']:g} GiB per GPU"
                   + (f" and {p.host_gib_per_node:.0f} GiB host memory per node" if p.host_gib_per_node else ""))
    if st.offload != "none":
        out.append(f"offload: {p.host_gib_per_node:.0f} GiB of host memory per node; {p.comm_s['offload']:.2f} s "
                   f"per step ({p.shares['offload']:.0%}) for the CPU optimizer step and PCIe transfers")
    if lo.tp > 1:
        out.append(f"tensor parallel {lo.tp} over {p.links.get('tensor')}: {p.comm_s['tensor']:.3f} s per step "
                   f"({p.shares['tensor']:.0%})")
    if lo.pp > 1:
        out.append(f"pipeline parallel {lo.pp} across nodes: bubble (p-1)/(v m + p - 1) = {lo.bubble:.1%} with "
                   f"m = {lo.grad_accum} micro-batches, v = {lo.virtual_stages} virtual stages")
    if lo.dp > 1:
        out.append(f"data parallel {lo.dp} over {p.links.get('data')}: {p.comm_s['data']:.3f} s exposed per step"
                   + (f"; inter-node fabric {p.shares['fabric']:.0%} of the step" if p.shares["fabric"] else ""))
    if cfg.workload == "qlora":
        out.append("QLoRA: NF4 weights dequantised to bf16 for each GEMM pass (memory-bound, counted in the step)")
    counted = "4N + 2/3 of attention FLOPs over peak BF16: no gradients for the frozen weights" if wl.adapters \
        else "6N + attention FLOPs over peak BF16"
    out.append(f"MFU {p.mfu:.0%} ({counted}); step {p.step_s:.2f} s, "
               f"{p.tokens_per_s:,.0f} tokens/s; slowdown x{p.slowdown:.2f} against compute without recompute")
    if p.tokens:
        out.append(f"goodput {p.goodput:.1%} (interruptions scale with GPU count; Llama 3: >90 % on 16,384 GPUs)")
    return out


def format_plan(p: Plan, currency: str = "USD") -> str:
    """The plan as text: layout, strategy, per-GPU memory, time, GPU-hours, cost, launch snippet, why."""
    import json

    lo, st, mem = p.layout, p.strategy, p.per_gpu_gib
    lines = ["", "Training plan", f"  strategy   {st.name} ({st.framework})",
             f"  layout     {lo.label()}  (links: " + ", ".join(f"{k} {v}" for k, v in p.links.items()) + ")"
             + (f"; {lo.virtual_stages} virtual stages, bubble {lo.bubble:.1%}" if lo.pp > 1 else ""),
             f"  batch      micro-batch {lo.micro_batch}, {lo.grad_accum} micro-batches per step",
             "  memory/GPU " + ", ".join(f"{k} {mem[k]:.1f}" for k in ("weights", "gradients", "optimizer",
                                                                      "activations", "logits", "overhead"))
             + f" = {mem['total']:.1f} of {mem['available']:g} GiB" + ("" if p.fits else "  DOES NOT FIT"),
             ]
    if p.host_gib_per_node:
        lines.append(f"  host       {p.host_gib_per_node:.0f} GiB per node for offloaded state")
    lines.append(f"  speed      {p.tokens_per_s:,.0f} tokens/s, step {p.step_s:.2f} s, MFU {p.mfu:.0%}; comm per step "
                 + (", ".join(f"{k} {v:.3f} s" for k, v in p.comm_s.items() if v) or "none exposed"))
    if p.tokens:
        lines.append(f"  time       {p.tokens:.3g} tokens in {p.days:.1f} days at goodput {p.goodput:.1%}; "
                     f"{p.gpu_hours:,.0f} GPU-hours")
        cost = p.cost
        lines.append("  cost       " + (f"rent {cost['rent_usd']:,.0f} USD; " if "rent_usd" in cost else "")
                     + f"energy {cost['energy_kwh']:,.0f} kWh = {cost['energy_cost']:,.0f} {currency}; "
                     f"buying the GPUs {cost['buy_usd']:,.0f} USD")
    lines.append(f"  launch     {p.launch['tool']}: {p.launch['command']}")
    if p.launch["tool"] == "deepspeed":
        lines += ["  ds_config.json:"] + ["    " + ln for ln in json.dumps(p.launch["config"], indent=2).splitlines()]
    lines.append("  why")
    lines += [f"    - {n}" for n in p.notes]
    others = [c for c in p.considered if not c["chosen"]][:6]
    if others:
        lines.append("  also considered")
        lines += [f"    - {c['strategy']} ({c['framework']}, {c['layout']}): {c['per_gpu_gib']} GiB/GPU"
                  + ("" if c["fits"] else " - does not fit") + f", {c['tokens_per_s']:,.0f} tokens/s" for c in others]
    return "\n".join(lines)


__all__ = ["CHECKPOINTING", "OPTIMIZERS", "SHARDING", "Layout", "Plan", "Strategy", "choose", "evaluate",
           "format_plan", "goodput", "layouts", "plan_memory", "plan_training", "strategies"]
