"""Power draw and energy cost of a configuration at its workload's typical load: the GPUs and the host
(CPUs, memory, NICs, fans, NVSwitch) they are built into."""

from __future__ import annotations

from ..catalog import Catalog, Gpu
from ..core.workloads import WORKLOADS
from .config import Config
from .engines import constant
from .host import host_power_w
from .memo import Kept


def deployment_of(cat: Catalog, cfg: Config) -> str:
    """The configuration's deployment: as given, else read from its PUE (a desk runs at the workstation PUE)."""
    if cfg.deployment:
        return cfg.deployment
    return "workstation" if cfg.pue <= cat.energy.pue["workstation"] else "datacenter"


def gpu_load_fraction(cat: Catalog, workload: str) -> float:
    wl = WORKLOADS[workload]
    if wl.trains:
        return constant(cat, "training_power_fraction")
    if wl.interactive:
        return constant(cat, "idle_power_fraction")
    return constant(cat, "decode_power_fraction")


def power(cat: Catalog, cfg: Config, rate: float | None, notes: list[str] | None,
          replicas: int = 1) -> dict[str, float]:
    """Watts at the wall and energy cost of `replicas` copies of the configuration (1: the configuration alone).
    The host is sized for all their GPUs together, as the platform is priced (candidates.platform_cost): eight
    1-GPU replicas share one 8-slot server, not eight 2-slot ones."""
    g, n = cfg.gpu, cfg.count * max(replicas, 1)
    frac, host_frac, host_max, host_what, gpu_w, host_w = _draw(cat, g, n, cfg.workload, deployment_of(cat, cfg))
    watts = gpu_w + host_w
    kwh_per_hour = watts / 1000 * cfg.pue
    cost_hour = kwh_per_hour * cfg.electricity_per_kwh
    per_million = cost_hour / (rate * 3600) * 1e6 if rate else 0.0
    if notes is not None:  # None: only the figures are wanted (sizing a system of replicas), not the note
        _note(cfg, notes, n, frac, host_frac, host_max, host_what, watts)
    return {
        "watts": watts,
        "gpu_watts": gpu_w,
        "host_watts": host_w,
        "board_power_w": g.board_power_w * n,
        "host_power_w": host_max,
        "pue": cfg.pue,
        "energy_kwh_per_hour": kwh_per_hour,
        "energy_cost_per_hour": cost_hour,
        "energy_cost_per_million_tokens": per_million,
    }


# The draw of a system does not depend on the price basis (electricity, currency, PUE): per catalog, GPU, count,
# workload and deployment, for the process (a request prices some 600 configurations, a sweep many bases of each).
_DRAWS = Kept(20_000)


def _draw(cat: Catalog, g: Gpu, n: int, workload: str, deployment: str) -> tuple:
    """(GPU load fraction, host load fraction, host rated watts, the host in words, GPU watts, host watts)."""
    return _DRAWS.get(cat, g, (n, workload, deployment), lambda: _work_out_draw(cat, g, n, workload, deployment))


def _work_out_draw(cat: Catalog, g: Gpu, n: int, workload: str, deployment: str) -> tuple:
    frac = gpu_load_fraction(cat, workload)
    # A development box idles most of the day, its host with it (the same duty cycle as its GPUs); a server
    # that trains or serves keeps its CPUs, fans and memory busy (host_power_fraction, measured in training).
    host_frac = frac if WORKLOADS[workload].interactive else constant(cat, "host_power_fraction")
    host_max, host_what = host_power_w(cat, g, n, deployment)
    return frac, host_frac, host_max, host_what, g.board_power_w * n * frac, host_max * host_frac


def _note(cfg: Config, notes: list[str], n: int, frac: float, host_frac: float, host_max: float, host_what: str,
          watts: float) -> None:
    g = cfg.gpu
    host_note = (f" + host {host_frac:.0%} of {host_max:,.0f} W ({host_what})" if host_max else f" ({host_what})")
    notes.append(f"power: GPUs {frac:.0%} of {g.board_power_w:g} W board power x {n}{host_note} = {watts:,.0f} W, "
                 f"PUE {cfg.pue:g}, {cfg.electricity_per_kwh:g} {cfg.currency}/kWh")
