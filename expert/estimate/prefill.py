"""Prefill (prompt processing) speed: FLOPs at a fraction of peak, or the weight stream, whichever is slower."""

from __future__ import annotations

from ..catalog import Catalog
from .config import Config
from .engines import constant, engine_efficiency
from .links import Link


def prefill(cat: Catalog, cfg: Config, engine: str, parallelism: str, read: float, bw: float, link: Link,
            notes: list[str] | None) -> float:
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    ctx, batch = cfg.context, cfg.batch
    pf = engine_efficiency(cat, "prefill", engine, g)
    ppeak = g.peak_tflops(p.compute if p.compute in ("fp8", "int8", "bf16", "fp32") else "fp16") or g.tflops_fp16
    ppeak = (ppeak or 1.0) * 1e12
    if pf["fp16_accumulate"] and g.segment == "consumer" and g.vendor == "nvidia" and p.compute != "fp32":
        ppeak *= constant(cat, "geforce_fp16_accumulate_factor")
    attn = 2 * m.layers * ctx * m.attention_heads * m.head_dim  # causal QK^T and AV, per token
    flops_tok = 2 * m.active_params + attn
    eff_n = 1 if parallelism == "layer-split" else n
    # Weights stream once per prompt while the GEMMs run: the slower of the two sets the pace.
    t_pf = max(flops_tok * ctx * batch / (ppeak * pf["mfu"] * eff_n), read / (bw * eff_n))
    if n > 1 and parallelism != "layer-split":
        t_pf += 2 * m.layers * (link.latency_s + 2 * ctx * batch * m.hidden_size * 2 * (n - 1) / n / (link.gbs * 1e9))
    if notes is not None:  # None: only the figure is wanted (the words are formatted when shown)
        notes.append(f"prefill: {flops_tok / 1e9:.1f} GFLOP/token at {pf['mfu']:.0%} of "
                     f"{ppeak / 1e12:.0f} TFLOPS ({p.compute} path)")
    return ctx * batch / t_pf
