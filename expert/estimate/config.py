"""What the estimator is asked (Config) and what it answers (Estimate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Gpu, Model, Precision
from ..core.once import once
from .links import Link

GIB = float(2**30)
_new = object.__new__


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
    kv_cache: str | None = None  # fp16 | fp8 | q8_0 | q4_0; None: the engine's default (16-bit)
    electricity_per_kwh: float = 0.11  # in `currency`
    currency: str = "USD"
    pue: float = 1.0
    deployment: str | None = None  # workstation | datacenter (the host whose power counts); None: from the PUE

    @classmethod
    def of(cls, model: Model, gpu: Gpu, count: int, precision: Precision, workload: str, context: int, batch: int,
           engine: str | None, kv_cache: str | None, electricity_per_kwh: float, currency: str, pue: float,
           deployment: str | None) -> Config:
        """The Config the constructor gives for these fields (every one, in declaration order: tested), without
        the frozen dataclass's one object.__setattr__ call per field (3.2 us a Config; build_candidates makes
        hundreds per request)."""
        c = _new(cls)
        c.__dict__.update(model=model, gpu=gpu, count=count, precision=precision, workload=workload, context=context,
                          batch=batch, engine=engine, kv_cache=kv_cache, electricity_per_kwh=electricity_per_kwh,
                          currency=currency, pue=pue, deployment=deployment)
        return c

    def but(self, **changes: Any) -> Config:
        """dataclasses.replace(self, **changes) without its field-by-field __init__ (5 us a call; the serving
        capacity and the plan search make one per configuration they work out). Tested equal to replace."""
        return replaced(self, changes)


def replaced(obj: Any, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> Any:
    """dataclasses.replace(obj, **changes) for a dataclass without __post_init__ or init-only fields: its
    attributes copied and changed, without the __init__ (and the default factories) replace calls; `drop`: what
    the object keeps of its own that a copy must work out again. Unknown names are refused as replace refuses
    them."""
    cls = type(obj)
    unknown = changes.keys() - cls.__dataclass_fields__.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    c = _new(cls)
    d = c.__dict__
    d.update(obj.__dict__)
    for name in drop:
        d.pop(name, None)
    d.update(changes)
    return c


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
    # The assumptions in words are formatted when first read (`assumptions`): a request reads them for the few
    # candidates it shows, of the hundreds it estimates. `worded` formats them (the estimator passes the same
    # code it computed the figures with, run again with its notes on).
    worded: Callable[[], list[str]] | None = field(default=None, repr=False, compare=False)
    ranges: dict[str, dict | None] = field(default_factory=dict)  # per throughput figure: low/expected/high
    offload: Any = None  # offload.Offload when llama.cpp would run the model partly from host RAM
    plan: Any = None  # plan.Plan for training workloads: strategy, layout, per-GPU memory, launch config

    @once
    def assumptions(self) -> list[str]:
        """What the figures assume, in words a reviewer can check (memory, decode, prefill, plan, power)."""
        return self.worded() if self.worded is not None else []

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
            "kv_cache": c.kv_cache or ("fp32" if c.precision.id == "fp32" else "fp16"),
            "parallelism": self.parallelism,
            "link": self.link.kind,
            "memory_gib": {k: round(v, 3) for k, v in self.memory_gib.items()},
            "fits": self.fits,
            "throughput": {k: (None if v is None else round(v, 2)) for k, v in self.throughput.items()},
            "power": {k: round(v, 4) for k, v in self.power.items()},
            "ranges": {k: (None if v is None else {f: (round(x, 2) if isinstance(x, float) else x)
                                                    for f, x in v.items()}) for k, v in self.ranges.items()},
            "offload": None if self.offload is None else {
                "gpu_layers": self.offload.gpu_layers, "cpu_layers": self.offload.cpu_layers,
                "decode_tokens_per_s": round(self.offload.decode_tokens_per_s, 2),
                "host_bandwidth_gbs": round(self.offload.host_bandwidth_gbs, 1),
                "limited_by": self.offload.limited_by},
            "plan": None if self.plan is None else self.plan.to_dict(),
            "assumptions": list(self.assumptions),
        }
