"""The catalog's domain types: GPUs, models, precisions, energy, sources (what facts/*.yaml hold)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

VERIFICATION = ("primary", "primary_quoted", "secondary", "secondary_weak", "derived")
QUALITY_LEVELS = ("none", "negligible", "small", "moderate", "large")


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    url: str | None
    date: str | None
    verification: str
    repo: str | None = None
    path: str | None = None
    commit: str | None = None

    def address(self) -> str:
        """Where a reader opens it: the url, or a GitHub address built from repo, path and commit."""
        if self.url:
            return self.url
        if self.repo:
            ref = self.commit or "HEAD"
            return f"https://github.com/{self.repo}/blob/{ref}/{self.path}" if self.path else \
                f"https://github.com/{self.repo}"
        return ""

    def cite(self) -> str:
        """Title and date; the address travels separately (renderers turn it into a link)."""
        return f"{self.title} ({self.date})" if self.date else self.title


@dataclass(frozen=True)
class Gpu:
    id: str
    name: str
    vendor: str
    segment: str
    architecture: str
    compute_capability: str | None
    memory_gib: float
    usable_memory_gib: float
    bandwidth_gbs: float
    tflops_fp16: float | None
    tflops_bf16: float | None
    tflops_fp8: float | None
    tops_int8: float | None
    tflops_fp32: float | None
    board_power_w: float
    nvlink: bool
    nvlink_gbs: float
    nvlink_max_gpus: int
    link_kind: str  # the GPU-to-GPU fabric: nvlink | nvlink-c2c | infinity-fabric | roce | hccs | pcie | none
    link_gbs: float  # bidirectional per GPU over that fabric (0 for pcie/none: PCIe is costed from gen x lanes)
    link_max_gpus: int  # GPUs one fabric domain joins (8 for HGX/OAM baseboards, 72 for an NVL72 rack)
    pcie_gen: int | None
    pcie_lanes: int | None
    p2p: bool
    form_factor: str
    slots: int
    cooling: str
    counts: tuple[int, ...]
    memory_type: str
    availability: str  # on-sale | used-only | discontinued
    availability_date: str
    sold_in: str  # card | system | baseboard | rack | module
    gpus_per_unit: int  # GPUs in the smallest unit a buyer can order
    ecc: bool
    launch_date: str
    bf16: bool
    fp8: bool
    flash_attention: int
    datacenter_licence: bool
    stack: str
    vllm: bool
    tensorrt_llm: bool
    llama_cpp: bool
    export_restricted: tuple[str, ...]
    china_only: bool
    price_usd: float
    price_cny: float | None
    price_date: str
    price_condition: str
    rent_usd_per_hour: float | None
    sources: tuple[str, ...]
    raw: dict

    def peak_tflops(self, dtype: str) -> float | None:
        return {
            "fp16": self.tflops_fp16,
            "bf16": self.tflops_bf16,
            "fp8": self.tflops_fp8,
            "int8": self.tops_int8,
            "fp32": self.tflops_fp32,
        }[dtype]


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    family: str
    hf_repo: str | None
    licence: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int  # FFN width of the dense layers
    vocab_size: int
    tied_embeddings: bool
    attention_bias: bool
    max_context: int
    experts: int  # routed experts per MoE layer (0 = dense)
    active_experts: int  # routed experts each token uses
    params: int  # total: every weight that is loaded, vision tower included
    sources: tuple[str, ...]
    shared_experts: int = 0  # experts every token passes through besides the routed ones (Llama 4)
    expert_intermediate_size: int = 0  # FFN width of one routed expert (0: intermediate_size, as in Mixtral)
    shared_expert_intermediate_size: int = 0  # FFN width of the shared expert (0: expert_intermediate_size)
    moe_layers: int = 0  # layers with an MoE block (0 with experts: all layers); the rest are dense
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma 3)
    norms_per_layer: int = 2  # Gemma 3 has four (pre/post attention, pre/post FFN)
    local_attention: str | None = None  # sliding | chunked: some layers attend only to a window of tokens
    local_window: int = 0  # tokens such a layer keeps in its KV cache
    local_layers: int = 0  # how many layers are local; the others attend to the whole context
    vision_params: int = 0  # vision encoder and projector of a multimodal checkpoint (loaded, not decoded)
    released_precision: str = "bf16"  # the precision the published checkpoint is in (gpt-oss: mxfp4)

    @cached_property
    def embedding_params(self) -> int:
        """Input embedding plus (untied) output head: the tensors quantizers usually leave at 16 bit."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @cached_property
    def expert_width(self) -> int:
        return self.expert_intermediate_size or self.intermediate_size

    @cached_property
    def n_moe_layers(self) -> int:
        return (self.moe_layers or self.layers) if self.experts else 0

    @cached_property
    def params_per_expert_layer(self) -> int:
        """Weights of one routed expert in one layer (gate, up and down projections)."""
        return 3 * self.hidden_size * self.expert_width

    @cached_property
    def routed_expert_params(self) -> int:
        return self.experts * self.params_per_expert_layer * self.n_moe_layers

    @cached_property
    def active_params(self) -> int:
        """Parameters touched per token: all of a dense model; of an MoE, all but the idle routed experts
        (the shared expert, attention and embeddings are always read). The vision tower is not run in decode."""
        idle = (self.experts - self.active_experts) * self.params_per_expert_layer * self.n_moe_layers
        return self.params - self.vision_params - idle

    @cached_property
    def active_ffn_width(self) -> int:
        """FFN width one token's activations pass through in an MoE layer (routed + shared), else dense."""
        if not self.experts:
            return self.intermediate_size
        shared = self.shared_experts * (self.shared_expert_intermediate_size or self.expert_width)
        return self.active_experts * self.expert_width + shared

    @cached_property
    def kv_bytes_per_token_fp16(self) -> int:
        # K and V, every layer, only the KV heads (GQA): 2 x L x kv_heads x head_dim x 2 bytes.
        return 2 * self.layers * self.kv_heads * self.head_dim * 2

    def kv_cached_tokens(self, context: int) -> float:
        """Token-layers of KV cache for one sequence of `context` tokens, in units of full layers: a sliding or
        chunked layer keeps at most its window (vLLM and llama.cpp allocate only that), a global one all of it."""
        if not self.local_attention or not self.local_layers:
            return float(context)
        local = self.local_layers * min(context, self.local_window)
        return (local + (self.layers - self.local_layers) * context) / self.layers


def count_params(m: dict[str, Any]) -> int:
    """Exact parameter count of a Llama-layout decoder (Mistral, Qwen2/3, Gemma 3, Mixtral, Llama 4, gpt-oss)
    from its config numbers: attention, dense or MoE FFN per layer, norms, embeddings, plus a vision tower."""
    h, i, v, L = m["hidden_size"], m["intermediate_size"], m["vocab_size"], m["layers"]
    nh, nkv, hd = m["attention_heads"], m["kv_heads"], m["head_dim"]
    attn = h * nh * hd + 2 * h * nkv * hd + nh * hd * h
    if m.get("attention_bias"):
        attn += nh * hd + 2 * nkv * hd
    if m.get("qk_norm"):
        attn += 2 * hd
    experts = m.get("experts") or 0
    moe_layers = (m.get("moe_layers") or L) if experts else 0
    ie = m.get("expert_intermediate_size") or i
    shared = (m.get("shared_experts") or 0) * 3 * h * (m.get("shared_expert_intermediate_size") or ie)
    moe = experts * 3 * h * ie + h * experts + shared
    norms = (m.get("norms_per_layer") or 2) * h
    body = L * (attn + norms) + (L - moe_layers) * 3 * h * i + moe_layers * moe
    head = 0 if m["tied_embeddings"] else v * h
    return v * h + body + h + head + (m.get("vision_params") or 0)


@dataclass(frozen=True)
class Precision:
    id: str
    name: str
    kind: str
    bits_per_weight: float
    embedding_bits: float
    compute: str
    requires: tuple[str, ...]
    engines: tuple[str, ...]
    trainable: bool
    quality: str
    quality_text: str
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()  # other names users type (F16, AWQ-INT4, ...), matched case-insensitively

    @cached_property
    def quality_rank(self) -> int:
        return QUALITY_LEVELS.index(self.quality)


@dataclass(frozen=True)
class Energy:
    regions: dict[str, dict]
    pue: dict[str, float]
    currencies: dict[str, float]
    currency_dates: dict[str, str]
    sources: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Catalog:
    gpus: dict[str, Gpu]
    models: dict[str, Model]
    shorthands: dict[str, str]
    precisions: dict[str, Precision]
    energy: Energy
    efficiency: dict[str, Any]
    sources: dict[str, Source]
    digest: str
    platforms: dict[str, Any] = field(default_factory=dict)  # facts/platforms.yaml, validated

    def source(self, sid: str) -> Source:
        return self.sources[sid]
