"""The values of the catalog-backed options (GPU, model and precision ids, currencies, regions, stacks), read
from the catalog only when --help or shell completion asks. The types themselves: core/optiontypes.py."""

from __future__ import annotations

from typing import Any

from ..core.optiontypes import Listed, Number

__all__ = ["Listed", "Number"]


def _catalog() -> Any:
    from ..store import load_all

    return load_all()[0]


def gpu_ids() -> list[str]:
    return sorted(_catalog().gpus)


def model_ids() -> list[str]:
    cat = _catalog()
    return sorted(cat.shorthands) + sorted(cat.models)


def precision_ids() -> list[str]:
    return ["auto", *sorted(_catalog().precisions)]


def concrete_precision_ids() -> list[str]:
    return sorted(_catalog().precisions)


def workload_ids() -> list[str]:
    from ..core.workloads import WORKLOADS

    return list(WORKLOADS)


def engine_ids(auto: bool = True) -> list[str]:
    from ..estimate import ENGINES

    return (["auto"] if auto else []) + list(ENGINES)


def currency_ids() -> list[str]:
    return sorted(_catalog().energy.currencies)


def region_ids() -> list[str]:
    return list(_catalog().energy.regions)


def stack_ids() -> list[str]:
    return sorted({g.stack for g in _catalog().gpus.values()})


GPU = Listed(gpu_ids, "GPU")
GPUS = Listed(gpu_ids, "GPU", multiple=True)
MODEL = Listed(model_ids, "MODEL")
WORKLOAD = Listed(workload_ids)
PRECISION = Listed(precision_ids)
CONCRETE_PRECISION = Listed(concrete_precision_ids)
ENGINE = Listed(engine_ids)
CURRENCY = Listed(currency_ids)
REGION = Listed(region_ids)
DEPLOYMENT = Listed(("workstation", "datacenter"))
CONDITION = Listed(("any", "new"))
STACKS = Listed(stack_ids, multiple=True)
KV_CACHE = Listed(("auto", "fp16", "fp8", "q8_0", "q4_0"))
ADVISE_FORMAT = Listed(("text", "markdown", "html", "json"))
TEXT_JSON = Listed(("text", "json"))
