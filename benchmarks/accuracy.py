"""Score the estimator against published measurements (tests/validation/measurements.yaml).

Prints each record's estimate, the published figure and the error, then the median absolute percentage
error per kind next to the targets, per source and per GPU family, the share of records inside the
estimate's low-high range (coverage), and the error on held-out sources (never used for fitting by
benchmarks/calibrate.py). Run: python benchmarks/accuracy.py [-q]
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from expert.catalog import Catalog, load_catalog
from expert.core.yamlio import load_yaml_file
from expert.estimate import GIB, Config, estimate, family, figure_range, plan_training, serve, weight_bytes

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = ROOT / "tests" / "validation" / "measurements.yaml"
# Median |error| targets per kind (issue 14): memory = inference weights, fine-tuning memory = training peaks.
TARGETS = {"weights_gib": 3, "memory_gib": 12, "decode_tokens_per_s": 10, "prefill_tokens_per_s": 20,
           "train_tokens_per_s": 12, "mfu": 12, "serving_tokens_per_s": 25, "gpu_hours": 15}
# Engines the records name that the estimator models under another name (training frameworks -> PyTorch).
ENGINES = {"llama.cpp": "llama.cpp", "vllm": "vllm", "tensorrt-llm": "tensorrt-llm", "transformers": "transformers",
           "mlx": "mlx", "sglang": "sglang"}
# llama.cpp CUDA builds before this date launched every op from the host in llama-bench tg runs: CUDA graphs
# (PR #6766, 2024-05-08) were switched off by the preceding prompt runs until PR #7302 (2024-05-15).
EAGER_UNTIL = "2024-05-15"
# Sources whose records calibrate.py never fits to: their error is the out-of-sample check.
HOLDOUT = ("pytorch/torchtitan", "NVIDIA NeMo docs", "Mushfiq Rahman", "llama.cpp discussion #15021",
           "geerlingguy/beowulf-ai-cluster", "llama.cpp PR #6017")


@dataclass
class Scored:
    id: str
    kind: str
    published: float
    estimated: float | None
    skipped: str | None = None
    source: str = ""
    family: str = "-"
    low: float | None = None
    high: float | None = None

    @property
    def error_pct(self) -> float:
        return (self.estimated - self.published) / self.published * 100

    @property
    def covered(self) -> bool:
        return self.low is not None and self.low <= self.published <= self.high

    @property
    def holdout(self) -> bool:
        return self.source.startswith(HOLDOUT)


def _to_gib(value: float, unit: str) -> float:
    return value * 1e9 / GIB if unit == "GB" else value


def record_config(cat: Catalog, r: dict) -> Config:
    training = r["workload"] in ("lora", "qlora", "finetune", "training")
    ctx = int(r.get("context") or 128)
    engine = ENGINES.get(r.get("engine") or "")
    if r["kind"] == "decode_tokens_per_s" and engine == "llama.cpp" and r.get("context"):
        # llama-bench tg N generates N tokens from an empty cache: on average N/2 tokens are cached.
        ctx = max(ctx // 2, 1)
    gpu = cat.gpus[r["gpu"]]
    if engine == "llama.cpp" and gpu.stack == "cuda" and str(r.get("engine_build") or "9999") < EAGER_UNTIL:
        # Builds of that date ran llama-bench's tg without CUDA graphs (facts/efficiency.yaml engines.llama.cpp-eager).
        engine = "llama.cpp-eager"
    return Config(model=cat.models[r["model"]], gpu=gpu, count=int(r["count"]),
                  precision=cat.precisions[r["precision"]], workload=r["workload"], context=ctx,
                  batch=int(r.get("batch") or 1), engine=None if training else engine)


def score_record(cat: Catalog, r: dict) -> Scored:
    kind = r["kind"]
    value = float(r["value"])
    src = r["source"]["title"]
    if kind == "weights_gib":
        model, prec = cat.models[r["model"]], cat.precisions[r["precision"]]
        est = weight_bytes(model, prec) / GIB
        pub = _to_gib(value, r["unit"])
        band = cat.efficiency.get("ranges", {}).get(kind, {}).get("all", {"low": 1.0, "high": 1.0})
        return Scored(r["id"], kind, pub, est, None, src, "-", est * band["low"], est * band["high"])
    if r.get("not_modelled"):
        return Scored(r["id"], kind, value, None, r["not_modelled"], src)
    if r.get("batch") is None and kind in ("decode_tokens_per_s", "prefill_tokens_per_s"):
        return Scored(r["id"], kind, value, None, "batch chosen by the server (max-throughput run)", src)
    cfg = record_config(cat, r)
    fam = family(cat, cfg.gpu)
    if kind == "serving_tokens_per_s":
        s = serve(cat, cfg, r.get("users"), int(r["prompt_tokens"]), int(r["output_tokens"]))
        rng = figure_range(cat, kind, cfg, s.engine, s.total_tps)
        return Scored(r["id"], kind, value, s.total_tps, None, src, fam, rng["low"], rng["high"])
    constraint = {**(r.get("layout") or {}), **(r.get("plan") or {})}
    if kind == "gpu_hours" or constraint:
        # A published run's layout / strategy pins the training plan; GPU-hours come from the plan's time to
        # train the published token count, with its goodput for the run's scale.
        plan = plan_training(cat, cfg, float(r["tokens"]) if kind == "gpu_hours" else None, constraint=constraint)
        if kind == "gpu_hours":
            rng = figure_range(cat, kind, cfg, "pytorch", plan.gpu_hours)
            return Scored(r["id"], kind, value, plan.gpu_hours, None, src, fam, rng["low"], rng["high"])
        if kind == "mfu":
            rng = figure_range(cat, kind, cfg, "pytorch", plan.mfu)
            return Scored(r["id"], kind, value, plan.mfu, None, src, fam, rng["low"], rng["high"])
        if kind == "memory_gib":
            got = plan.per_gpu_gib["total"]
            rng = figure_range(cat, kind, cfg, "pytorch", got)
            return Scored(r["id"], kind, _to_gib(value, r["unit"]), got, None, src, fam, rng["low"], rng["high"])
        got = plan.tokens_per_s / (cfg.count if r.get("unit") == "tokens/s/GPU" else 1)
        rng = figure_range(cat, kind, cfg, "pytorch", got)
        return Scored(r["id"], kind, value, got, None, src, fam, rng["low"], rng["high"])
    est = estimate(cat, cfg)
    if kind == "memory_gib":
        scope = r.get("scope", "total")
        got = est.memory_gib["per_gpu"] if scope == "per_gpu" else est.memory_gib["total"]
        rng = figure_range(cat, kind, cfg, est.engine, got)
        return Scored(r["id"], kind, _to_gib(value, r["unit"]), got, None, src, fam, rng["low"], rng["high"])
    if kind == "mfu":
        tps = est.throughput["train_tokens_per_s"]
        model, gpu = cfg.model, cfg.gpu
        peak = (gpu.peak_tflops("bf16") or gpu.tflops_fp16) * 1e12
        attn = 6 * model.layers * cfg.context * model.attention_heads * model.head_dim
        got = tps * (6 * model.active_params + attn) / (peak * cfg.count)
        rng = figure_range(cat, kind, cfg, est.engine, got)
        return Scored(r["id"], kind, value, got, None, src, fam, rng["low"], rng["high"])
    got = est.throughput[kind]
    if r.get("unit") == "tokens/s/GPU":
        got = got / cfg.count
    rng = est.ranges.get(kind) or {"low": None, "high": None}
    scale = got / est.throughput[kind] if est.throughput[kind] else 1.0
    low = None if rng["low"] is None else rng["low"] * scale
    high = None if rng["high"] is None else rng["high"] * scale
    return Scored(r["id"], kind, value, got, None, src, fam, low, high)


def score_all(cat: Catalog | None = None) -> list[Scored]:
    cat = cat or load_catalog()
    records = load_yaml_file(MEASUREMENTS)["records"]
    return [score_record(cat, r) for r in records]


def _median(scored: list[Scored]) -> float:
    return statistics.median(abs(s.error_pct) for s in scored)


def summary(scored: list[Scored]) -> dict[str, tuple[int, float]]:
    out = {}
    for kind in TARGETS:
        got = [s for s in scored if s.kind == kind and s.skipped is None]
        if got:
            out[kind] = (len(got), _median(got))
    return out


def by(scored: list[Scored], key) -> dict[tuple[str, str], tuple[int, float]]:
    groups: dict[tuple[str, str], list[Scored]] = {}
    for s in scored:
        if s.skipped is None:
            groups.setdefault((key(s), s.kind), []).append(s)
    return {k: (len(v), _median(v)) for k, v in sorted(groups.items())}


def coverage(scored: list[Scored]) -> tuple[int, int]:
    used = [s for s in scored if s.skipped is None and s.low is not None]
    return sum(s.covered for s in used), len(used)


def source_failures(scored: list[Scored]) -> list[tuple[str, str, float]]:
    """Sources whose median error for a kind exceeds twice that kind's target."""
    return [(src, kind, med) for (src, kind), (_, med) in by(scored, lambda s: s.source).items()
            if med > 2 * TARGETS[kind]]


def main(argv: list[str]) -> int:
    scored = score_all()
    if "-q" not in argv:
        print(f"{'record':62} {'published':>11} {'estimate':>11} {'error':>8}  in range")
        for s in scored:
            if s.skipped:
                print(f"{s.id[:62]:62} {s.published:11.2f} {'-':>11} skipped: {s.skipped}")
            else:
                print(f"{s.id[:62]:62} {s.published:11.2f} {s.estimated:11.2f} {s.error_pct:+7.1f}%  "
                      f"{'yes' if s.covered else 'NO'}")
        print()
    used = [s for s in scored if s.skipped is None]
    print(f"{len(scored)} records ({len(used)} scored) from {len({s.source for s in scored})} sources")
    print(f"\n{'kind':24} {'records':>7} {'median |error|':>15} {'target':>7}")
    for kind, (n, med) in summary(scored).items():
        flag = "ok" if med <= TARGETS[kind] else "MISSED"
        print(f"{kind:24} {n:7d} {med:14.1f}% {TARGETS[kind]:6d}%  {flag}")
    print(f"\n{'source':72} {'kind':22} {'n':>4} {'median':>7}")
    for (src, kind), (n, med) in by(scored, lambda s: s.source).items():
        flag = "  > 2x target" if med > 2 * TARGETS[kind] else ""
        print(f"{src[:72]:72} {kind:22} {n:4d} {med:6.1f}%{flag}")
    print(f"\n{'GPU family':16} {'kind':22} {'n':>4} {'median':>7}")
    for (fam, kind), (n, med) in by(scored, lambda s: s.family).items():
        print(f"{fam:16} {kind:22} {n:4d} {med:6.1f}%")
    inside, total = coverage(scored)
    print(f"\nrange coverage: {inside}/{total} = {inside / max(total, 1):.0%} of scored records inside low-high")
    held = [s for s in used if s.holdout]
    print(f"\nheld-out sources (not fitted): {len(held)} records")
    for kind, (n, med) in summary(held).items():
        print(f"  {kind:22} {n:4d} {med:6.1f}%")
    fails = source_failures(scored)
    print(f"\nsources above twice their kind's target: {len(fails)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
