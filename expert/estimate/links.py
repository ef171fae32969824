"""The GPU-to-GPU path of a configuration: one answer, used both to cost communication and by the rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..catalog import Catalog, Gpu
from .engines import constant as c


@dataclass(frozen=True)
class Link:
    kind: str  # none | nvlink | infinity-fabric | roce | hccs | pcie-p2p | pcie-host | network
    gbs: float  # achievable one-way bandwidth per GPU, GB/s
    latency_s: float  # small-message all-reduce latency

    @property
    def multi_node(self) -> bool:
        return self.kind == "network"


_LINKS: dict[tuple, Link] = {}


def has_fabric(gpu: Gpu) -> bool:
    """A GPU-to-GPU fabric beyond PCIe: NVLink, Infinity Fabric, HCCS, RoCE scale-up ports."""
    return gpu.link_kind not in ("pcie", "none") and gpu.link_gbs > 0


def scale_up_gpus(cat: Catalog, gpu: Gpu) -> int:
    """GPUs one system joins without the cluster network: an 8-GPU server, or the NVLink / Infinity Fabric
    domain where that is larger (a GB200/GB300 NVL72 rack is one 72-GPU NVLink domain)."""
    return int(max(c(cat, "gpus_per_node"), gpu.link_max_gpus if has_fabric(gpu) else 0))


def nodes_spanned(cat: Catalog, gpu: Gpu, count: int) -> int:
    """Scale-up domains (servers, or NVL racks) `count` GPUs span: more than one needs the cluster network."""
    return max(1, -(-count // scale_up_gpus(cat, gpu)))


def link_for(cat: Catalog, gpu: Gpu, count: int) -> Link:
    """Slowest hop of `count` GPUs: NVLink inside its domain, PCIe inside one server, the network beyond.

    Memoised per catalog object, GPU and count: the training-plan search asks for the same links thousands
    of times per request."""
    key = (cat.digest, gpu.id, gpu.link_kind, gpu.link_gbs, gpu.link_max_gpus, gpu.pcie_gen, gpu.pcie_lanes, gpu.p2p,
           count)
    hit = _LINKS.get(key)
    if hit is None:
        if len(_LINKS) > 100_000:
            _LINKS.clear()
        hit = _LINKS[key] = _link_for(cat, gpu, count)
    return hit


def _link_for(cat: Catalog, gpu: Gpu, count: int) -> Link:
    if count <= 1:
        return Link("none", math.inf, 0.0)
    fabric = has_fabric(gpu)
    if count > scale_up_gpus(cat, gpu):
        # Beyond one server (or one scale-up domain, if larger) the slowest hop is the cluster network.
        return Link("network", c(cat, "cluster_network_gbs_per_gpu"), c(cat, "allreduce_latency_pcie_us") * 2e-6)
    if fabric and count <= max(gpu.link_max_gpus, 1):
        # NVLink, Infinity Fabric (xGMI), HCCS or RoCE scale-up ports: the catalog gives the bidirectional
        # bandwidth per GPU; an all-reduce streams one way. The NVLink efficiency is the only measured one and
        # stands in for the other point-to-point fabrics.
        return Link(gpu.link_kind, gpu.link_gbs / 2 * c(cat, "nvlink_efficiency"),
                    c(cat, "allreduce_latency_nvlink_us") * 1e-6)
    # Cards bridged in pairs (A100 PCIe, RTX A6000) still all-reduce over PCIe once more than a pair takes part.
    lanes = gpu.pcie_lanes or 16
    gen = gpu.pcie_gen or 4
    gbs = c(cat, "pcie_gbs_per_lane_gen4") * lanes * 2 ** (gen - 4) * c(cat, "pcie_efficiency")
    if not gpu.p2p:
        # Without peer-to-peer every transfer bounces through host memory.
        return Link("pcie-host", gbs * c(cat, "host_bounce_fraction"), c(cat, "allreduce_latency_pcie_us") * 2e-6)
    return Link("pcie-p2p", gbs, c(cat, "allreduce_latency_pcie_us") * 1e-6)
