"""Power draw and energy cost of a configuration at its workload's typical load."""

from __future__ import annotations

from ..catalog import Catalog
from ..core.workloads import WORKLOADS
from .config import Config
from .engines import constant


def power(cat: Catalog, cfg: Config, rate: float | None, notes: list[str]) -> dict[str, float]:
    g, n = cfg.gpu, cfg.count
    wl = WORKLOADS[cfg.workload]
    if wl.trains:
        frac = constant(cat, "training_power_fraction")
    elif wl.interactive:
        frac = constant(cat, "idle_power_fraction")
    else:
        frac = constant(cat, "decode_power_fraction")
    watts = g.board_power_w * n * frac
    kwh_per_hour = watts / 1000 * cfg.pue
    cost_hour = kwh_per_hour * cfg.electricity_per_kwh
    per_million = cost_hour / (rate * 3600) * 1e6 if rate else 0.0
    notes.append(f"power: {frac:.0%} of {g.board_power_w:g} W board power per GPU, PUE {cfg.pue:g}, "
                 f"{cfg.electricity_per_kwh:g} {cfg.currency}/kWh")
    return {
        "watts": watts,
        "board_power_w": g.board_power_w * n,
        "pue": cfg.pue,
        "energy_kwh_per_hour": kwh_per_hour,
        "energy_cost_per_hour": cost_hour,
        "energy_cost_per_million_tokens": per_million,
    }
