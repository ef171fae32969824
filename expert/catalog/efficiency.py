"""The calibration table (facts/efficiency.yaml): achievable fractions of peak, each with its source.

These are the only constants in the estimator that are not datasheet or config facts. Each is a
physical quantity (a fraction of peak bandwidth, a per-layer launch overhead, a link bandwidth)
taken from published measurements or fitted to the validation set, never a fudge factor on a result.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import FactError, located
from ..core.schema import Field, opt, validate
from ..core.yamlio import plain

_SRC = Field("list", item=Field("str"))

_DECODE_ENGINE = {
    "bandwidth_fraction": Field("num", min=0.05, max=1.0),
    "layer_overhead_us": Field("num", min=0, max=10000),
    "compute_fraction": Field("num", min=0.01, max=1.0),
    "step_overhead_us": opt("num", min=0, max=100000),
    "sources": _SRC,
    "basis": Field("str"),
}
_PREFILL_ENGINE = {
    "mfu": Field("num", min=0.01, max=1.0),
    "fp16_accumulate": Field("bool"),
    "sources": _SRC,
    "basis": Field("str"),
}
_VALUE = {"value": Field("num", min=0, max=1e10), "sources": _SRC, "basis": Field("str")}
# Inference engines: how they execute (eager Python launches, CUDA-graph replay, ahead-of-time compiled),
# whose calibration they fall back to, their default maximum batch, and the sources for all three.
_ENGINE = {
    "execution": Field("str", choices=("eager", "cuda-graphs", "compiled")),
    "like": opt("str"),
    "max_batch": Field("num", min=1, max=1e6),
    "runs_on": Field("list", item=Field("str")),
    "sources": _SRC,
    "basis": Field("str"),
}
# A figure's spread: the estimate times low and high (ratios of measurements to estimates), over n records.
_RANGE = {"low": Field("num", min=0.001, max=1000), "high": Field("num", min=0.001, max=1000),
          "n": Field("int", min=1, max=1e9)}
_MEMORY_SYSTEM = {"gpus": Field("list", item=Field("str")), "sources": _SRC, "basis": Field("str")}

EFFICIENCY_SPEC: dict[str, Field] = {
    "sources": Field("map", values=Field("any")),
    "decode": Field("map", values=Field("map", spec=_DECODE_ENGINE)),
    "prefill": Field("map", values=Field("map", spec=_PREFILL_ENGINE)),
    "constants": Field("map", values=Field("map", spec=_VALUE)),
    "engines": opt("map", values=Field("map", spec=_ENGINE)),
    "training": opt("map", values=Field("map", spec={"hfu": Field("num", min=0.05, max=1.0), "sources": _SRC,
                                                     "basis": Field("str")})),
    "memory_systems": opt("map", values=Field("map", spec=_MEMORY_SYSTEM)),
    # Written by benchmarks/calibrate.py from the validation residuals: ranges[kind][family] = {low, high, n}
    # (ratios to the estimate) and measured[key] = {value, record}.
    "ranges": opt("map", values=Field("map", values=Field("map", spec=_RANGE))),
    "measured": opt("map", values=Field("map", spec={"value": Field("num", min=0, max=1e15),
                                                     "record": Field("str")})),
}

REQUIRED_CONSTANTS = (
    "geforce_fp16_accumulate_factor",
    "training_hfu",
    "recompute_flops_factor",
    "comm_overlap",
    "pcie_gbs_per_lane_gen4",
    "pcie_efficiency",
    "host_bounce_fraction",
    "nvlink_efficiency",
    "allreduce_latency_nvlink_us",
    "allreduce_latency_pcie_us",
    "cuda_context_gib",
    "prefill_ubatch_tokens",
    "lora_rank",
    "decode_power_fraction",
    "host_power_fraction",
    "prefill_power_fraction",
    "training_power_fraction",
    "idle_power_fraction",
    "layer_split_hop_us",
    "cluster_network_gbs_per_gpu",
    "fp8_training_speedup",
    "gpus_per_node",
    "serving_memory_fraction",
    "host_memory_bandwidth_gbs",
    "host_bandwidth_fraction",
    "host_memory_gib",
    "server_host_memory_gib",
    "server_host_bandwidth_gbs",
    "cpu_adam_bytes_per_param",
    "nvme_gbs_per_node",
    "reduce_bucket_elements",
    "stage3_max_live_parameters",
    "dequant_bytes_per_param",
    "loss_chunks",
    "pretrain_global_batch_tokens",
    "finetune_global_batch_tokens",
    "max_global_batch_tokens",
    "reliability_reference_gpus",
    "reliability_reference_goodput",
)


def load_efficiency(doc: Any, file: str) -> dict[str, Any]:
    validate(doc, EFFICIENCY_SPEC, file=file, entry="efficiency", error=FactError)
    constants = doc["constants"]
    for name in REQUIRED_CONSTANTS:
        if name not in constants:
            raise FactError(located(file, constants.line, "constants", f"missing '{name}'"))
    srcs: dict[str, tuple[str, ...]] = {}
    for section in ("decode", "prefill", "constants", "engines", "memory_systems", "training"):
        for key, entry in (doc[section] if section in doc else {}).items():
            srcs[f"{section}.{key}"] = tuple(entry["sources"])
    out = plain(doc)
    out["_sources"] = srcs
    return out
