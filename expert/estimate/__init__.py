"""Stage 3: the numeric estimator. Memory, throughput, power of one configuration.

Pure functions of catalog facts; no engine, no I/O. Every result carries the assumptions it used,
in words a reviewer can check. Formulas (see docs/estimator.md for the derivations):

- weights   = linear params x bits/8 + embedding params x embedding bits/8          (memory.py)
- KV cache  = 2 x layers x kv_heads x head_dim x bytes x tokens x batch  (GQA-aware)  (memory.py)
- decode    = bytes read per step / (bandwidth x achievable fraction) + layers x launch overhead (decode.py)
- prefill   = (2 x active params + attention) FLOPs per token / (peak x MFU)        (prefill.py)
- training  = (6 + recompute) x params FLOPs per token / (peak x HFU) + exposed gradient traffic (training.py)
- links     = NVLink inside its domain, PCIe inside one server, the network beyond  (links.py)
"""

from __future__ import annotations

from ..catalog import Catalog
from ..core.workloads import WORKLOADS
from .config import GIB, Config, Estimate
from .decode import decode
from .engines import constant, engine_efficiency, pick_engine
from .links import Link, link_for
from .memory import estimate_memory, kv_bytes_per_token, lora_params, weight_bytes
from .power import power
from .prefill import prefill
from .training import train_rate

__all__ = ["GIB", "Config", "Estimate", "Link", "constant", "decode_rate", "engine_efficiency", "estimate",
           "kv_bytes_per_token", "link_for", "lora_params", "pick_engine", "weight_bytes"]


def decode_rate(cat: Catalog, est: Estimate, batch: int) -> float:
    """Aggregate decode tokens/s of an estimated inference configuration at another batch size."""
    return decode(cat, est.config, est.engine, est.parallelism, batch)[0]


def estimate(cat: Catalog, cfg: Config) -> Estimate:
    g, n = cfg.gpu, cfg.count
    wl = WORKLOADS[cfg.workload]
    engine = pick_engine(g, cfg.precision, cfg.workload) if wl.trains else (
        cfg.engine or pick_engine(g, cfg.precision, cfg.workload))
    notes = [f"memory in GiB (2^30 bytes); the {g.id}'s {g.memory_gib:g} GB is taken as {g.memory_gib:g} GiB"]
    mem = estimate_memory(cat, cfg, engine, notes)
    link = link_for(cat, g, n)
    decode_tps = prefill_tps = train_tps = None
    if not wl.trains:
        decode_tps, read, comm, d = decode(cat, cfg, engine, mem.parallelism, cfg.batch)
        notes.append(
            f"decode ({engine} on {g.stack}): {read / 1e9:.2f} GB read per step at "
            f"{d['bandwidth_fraction']:.0%} of {g.bandwidth_gbs:g} GB/s, + {d['layer_overhead_us']:g} us per layer"
            + (f", + {comm * 1e3:.2f} ms {link.kind} all-reduce" if comm and mem.parallelism != "layer-split" else "")
        )
        bw = g.bandwidth_gbs * 1e9 * d["bandwidth_fraction"]
        prefill_tps = prefill(cat, cfg, engine, mem.parallelism, read, bw, link, notes)
    else:
        train_tps = train_rate(cat, cfg, mem.checkpointing, link, notes)
    pw = power(cat, cfg, train_tps if wl.trains else decode_tps, notes)
    throughput = {"decode_tokens_per_s": decode_tps, "prefill_tokens_per_s": prefill_tps,
                  "train_tokens_per_s": train_tps}
    return Estimate(cfg, engine, mem.parallelism, mem.breakdown, mem.fits, throughput, pw, link, notes)
