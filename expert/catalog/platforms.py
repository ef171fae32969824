"""facts/platforms.yaml: what GPUs are built into (hosts, servers, baseboards), the cluster network,
datacenter hosting and the overhead of a rented run, each price dated and sourced."""

from __future__ import annotations

from typing import Any

from ..core.errors import FactError
from ..core.schema import Field, basis_field, validate
from ..core.yamlio import plain

_SRC = Field("list", item=Field("str"))
_BASIS = basis_field()
_PLATFORM = {"max_gpus": Field("int", min=1, max=100000, required=False), "price_usd": Field("num", min=0, max=1e7),
             "host_memory_gib": Field("num", min=0, max=1e6, required=False),
             "existing_host_memory_gib": Field("num", min=0, max=1e6, required=False),
             "psu_upgrade_usd": Field("num", min=0, max=1e5, required=False),
             # Rated power of the host around the GPUs (not the GPUs), its basis and, where they differ, sources.
             "host_power_w": Field("num", min=0, max=1e6, required=False),
             "host_power_basis": Field("str", required=False, check=_BASIS.check),
             "host_power_sources": Field("list", item=Field("str"), required=False),
             "date": Field("any"), "sources": _SRC, "basis": _BASIS}
_VALUE = {"value": Field("num", min=0, max=1e7), "date": Field("any", required=False), "sources": _SRC,
          "basis": _BASIS}
PLATFORM_KINDS = ("desktop", "hedt", "pcie-server-2", "pcie-server-4", "pcie-server", "baseboard-server",
                  "nvl72-rack", "cluster-network-per-node")
# Every kind a GPU is built into states its host power (the cluster network is priced, not powered, here).
HOST_KINDS = PLATFORM_KINDS[:-1]
SPEC: dict[str, Field] = {
    "sources": Field("map", values=Field("any")),
    "platforms": Field("map", spec={k: Field("map", spec=_PLATFORM) for k in PLATFORM_KINDS}),
    "hosting": Field("map", spec={"colocation_usd_per_kw_month": Field("map", spec=_VALUE)}),
    "rent": Field("map", spec={"run_setup_fraction": Field("map", spec=_VALUE)}),
}


def load_platforms(doc: Any, file: str) -> dict[str, Any]:
    validate(doc, SPEC, file=file, entry="platforms", error=FactError)
    out = plain(doc)
    out.pop("sources", None)
    for kind in HOST_KINDS:
        entry = out["platforms"][kind]
        for need in ("host_power_w", "host_power_basis"):
            if need not in entry:
                raise FactError(f"{file}: platforms.{kind}: missing '{need}' (the host's power besides the GPUs)")
    srcs: dict[str, tuple[str, ...]] = {}
    for section in ("platforms", "hosting", "rent"):
        for key, entry in out[section].items():
            srcs[f"{section}.{key}"] = tuple(entry["sources"])
            if "host_power_sources" in entry:
                srcs[f"{section}.{key}.host_power"] = tuple(entry["host_power_sources"])
    out["_sources"] = srcs
    return out
