"""What the estimator is asked (Config) and what it answers (Estimate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..catalog import Gpu, Model, Precision
from .links import Link

GIB = float(2**30)


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
    link: Link  # the GPU-to-GPU path the communication was costed on (rules read the same one)
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
            "link": self.link.kind,
            "memory_gib": {k: round(v, 3) for k, v in self.memory_gib.items()},
            "fits": self.fits,
            "throughput": {k: (None if v is None else round(v, 2)) for k, v in self.throughput.items()},
            "power": {k: round(v, 4) for k, v in self.power.items()},
            "assumptions": list(self.assumptions),
        }
