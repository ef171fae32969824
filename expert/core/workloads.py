"""The workloads the tool sizes for, and what each implies: one table instead of literal tuples."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    trains: bool  # runs a backward pass (LoRA, QLoRA, full fine-tune, pre-training)
    full_weights: bool  # gradients and optimizer state for every weight (full fine-tune, pre-training)
    adapters: bool  # trains low-rank adapters on frozen weights (LoRA, QLoRA)
    serving: bool  # answers users (production inference)
    interactive: bool  # one person at a desk (development box)
    multi_node: bool  # may span several 8-GPU nodes
    desk_side: bool  # usually built as a workstation rather than racked

    @property
    def decodes(self) -> bool:
        """Generates tokens: the estimator reports decode speed and serving capacity."""
        return not self.trains


WORKLOADS: dict[str, Workload] = {w.id: w for w in (
    Workload("dev", "development box", False, False, False, False, True, False, True),
    Workload("inference", "inference serving", False, False, False, True, False, False, False),
    Workload("lora", "LoRA fine-tuning", True, False, True, False, False, False, True),
    Workload("qlora", "QLoRA fine-tuning", True, False, True, False, False, False, True),
    Workload("finetune", "full fine-tuning", True, True, False, False, False, True, False),
    Workload("training", "pre-training", True, True, False, False, False, True, False),
)}


def workload(name: str) -> Workload:
    return WORKLOADS[name]
