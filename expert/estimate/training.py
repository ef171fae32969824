"""Training throughput: model FLOPs (+ recompute) at a fraction of peak, plus exposed gradient traffic."""

from __future__ import annotations

from ..catalog import Catalog
from ..core.workloads import WORKLOADS
from .config import Config
from .engines import constant, training_key
from .links import Link
from .memory import lora_params


def train_rate(cat: Catalog, cfg: Config, checkpointing: bool, link: Link, notes: list[str]) -> float:
    m, g, p, n = cfg.model, cfg.gpu, cfg.precision, cfg.count
    ctx, batch = cfg.context, cfg.batch
    wl = WORKLOADS[cfg.workload]
    # Hardware FLOPs utilisation per architecture where the validation set fits one, else the common value.
    per_arch = cat.efficiency.get("training", {}).get(training_key(cat, g))
    hfu = per_arch["hfu"] if per_arch else constant(cat, "training_hfu")
    dtype = "bf16" if g.bf16 else "fp16"
    peak = (g.peak_tflops(dtype) or g.tflops_fp16 or 1.0) * 1e12
    if p.id == "fp8" and g.fp8:
        # Only the GEMMs run in FP8 (casts, attention and optimizer stay bf16): measured end-to-end
        # gain, not the 2x of the datasheet.
        peak *= constant(cat, "fp8_training_speedup")
        dtype = "fp8 GEMMs"
    attn = 6 * m.layers * ctx * m.attention_heads * m.head_dim
    if wl.adapters:
        # Frozen weights need no weight gradients: backward costs one forward instead of two.
        base = 4 * m.active_params + attn * 2 / 3
    else:
        base = 6 * m.active_params + attn
    recompute = constant(cat, "recompute_flops_factor") * 2 * m.active_params if checkpointing else 0.0
    hw_flops = base + recompute
    t_compute = hw_flops * ctx * batch / (peak * hfu)
    t_comm = 0.0
    if n > 1:
        if wl.adapters:
            grad_bytes = lora_params(m, int(constant(cat, "lora_rank"))) * 4
        elif link.multi_node:
            # Across nodes: tensor/pipeline parallel inside the NVLink domain, data parallel between
            # nodes, so each GPU all-reduces its 1/domain share of the bf16 gradients once per step.
            grad_bytes = 2 * m.params * 2 / max(g.nvlink_max_gpus, 1)
        else:
            # FSDP inside one box: all-gather for forward and backward, reduce-scatter of gradients.
            grad_bytes = m.params * 2 * 3
        t_comm = grad_bytes * (n - 1) / n / (link.gbs * 1e9)
    exposed = max(0.0, t_comm - constant(cat, "comm_overlap") * t_compute)
    notes.append(
        f"training: {hw_flops / 1e9:.0f} GFLOP/token incl. recompute at {hfu:.0%} of {peak / 1e12:.0f} "
        f"TFLOPS {dtype}" + (f"; {exposed * 1e3:.0f} ms/step exposed {link.kind} traffic" if n > 1 else "")
    )
    return ctx * batch * n / (t_compute + exposed)
