"""The host the GPUs are built into (facts/platforms.yaml `platforms`): which kind, how many, and its power.

One place decides it, for the power draw here and for the platform price in candidates.py, so the watts and
the dollars are of the same machine."""

from __future__ import annotations

from ..catalog import Catalog, Gpu

DESK_KINDS = ("desktop", "hedt")
PCIE_SERVER_KINDS = ("pcie-server-2", "pcie-server-4", "pcie-server")


def host_platform(cat: Catalog, gpu: Gpu, count: int, deployment: str) -> tuple[str | None, int]:
    """(platform kind, how many of it) that `count` of this part run in; (None, 0) for a whole machine whose
    board power is already the machine's (Apple, DGX Spark, Ryzen AI Max)."""
    plat = cat.platforms["platforms"]

    def units(kind: str) -> int:
        return max(1, -(-count // int(plat[kind]["max_gpus"])))

    if gpu.sold_in == "rack":
        return "nvl72-rack", units("nvl72-rack")
    if gpu.form_factor == "system" or gpu.sold_in == "system":
        return None, 0
    if gpu.price_condition == "system-share" or gpu.form_factor in ("sxm", "oam"):
        return "baseboard-server", units("baseboard-server")
    if deployment == "workstation":
        kind = "desktop" if count <= plat["desktop"]["max_gpus"] else "hedt"
        return kind, units(kind)
    kind = next((k for k in PCIE_SERVER_KINDS[:2] if count <= plat[k]["max_gpus"]), "pcie-server")
    return kind, units(kind)


def host_power_w(cat: Catalog, gpu: Gpu, count: int, deployment: str) -> tuple[float, str]:
    """Rated power of the host(s) around the GPUs (CPUs, memory, NICs, fans, NVSwitch; the GPUs excluded) and
    what that host is, in words."""
    kind, n = host_platform(cat, gpu, count, deployment)
    if kind is None:
        return 0.0, "a whole machine (its board power includes the host)"
    w = float(cat.platforms["platforms"][kind]["host_power_w"])
    return w * n, f"{n} x {kind} host ({w:,.0f} W each)"
