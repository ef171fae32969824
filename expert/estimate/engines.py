"""Which inference/training engine runs a configuration, and its calibrated efficiency entry."""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog, Gpu, Precision
from ..core.workloads import WORKLOADS


def constant(cat: Catalog, name: str) -> float:
    """A named calibration constant of facts/efficiency.yaml (each has a source and a basis there)."""
    return float(cat.efficiency["constants"][name]["value"])


def pick_engine(gpu: Gpu, precision: Precision, workload: str) -> str:
    """The engine a practitioner would use: llama.cpp for GGUF and Apple, vLLM for serving, PyTorch to train."""
    if WORKLOADS[workload].trains:
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
