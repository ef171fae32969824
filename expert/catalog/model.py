"""The catalog's domain types: GPUs, models, precisions, energy, sources (what facts/*.yaml hold)."""

from __future__ import annotations

from dataclasses import dataclass
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
    pcie_gen: int | None
    pcie_lanes: int | None
    p2p: bool
    form_factor: str
    slots: int
    cooling: str
    counts: tuple[int, ...]
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
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    attention_bias: bool
    max_context: int
    experts: int
    active_experts: int
    params: int
    sources: tuple[str, ...]

    @property
    def embedding_params(self) -> int:
        """Input embedding plus (untied) output head: the tensors quantizers usually leave at 16 bit."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def params_per_expert_layer(self) -> int:
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def active_params(self) -> int:
        """Parameters touched per token: all of a dense model, the routed experts of an MoE."""
        if not self.experts:
            return self.params
        idle = (self.experts - self.active_experts) * self.params_per_expert_layer * self.layers
        return self.params - idle

    @property
    def kv_bytes_per_token_fp16(self) -> int:
        # K and V, every layer, only the KV heads (GQA): 2 x L x kv_heads x head_dim x 2 bytes.
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


def count_params(m: dict[str, Any]) -> int:
    """Exact parameter count of a Llama/Mistral/Qwen2-layout decoder from its config numbers."""
    h, i, v, L = m["hidden_size"], m["intermediate_size"], m["vocab_size"], m["layers"]
    nh, nkv, hd = m["attention_heads"], m["kv_heads"], m["head_dim"]
    attn = h * nh * hd + 2 * h * nkv * hd + nh * hd * h
    if m.get("attention_bias"):
        attn += nh * hd + 2 * nkv * hd
    experts = m.get("experts") or 0
    mlp = experts * 3 * h * i + h * experts if experts else 3 * h * i
    per_layer = attn + mlp + 2 * h
    head = 0 if m["tied_embeddings"] else v * h
    return v * h + L * per_layer + h + head


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

    @property
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

    def source(self, sid: str) -> Source:
        return self.sources[sid]
