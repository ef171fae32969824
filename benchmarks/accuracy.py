"""Score the estimator against published measurements (tests/validation/measurements.yaml).

Prints each record's estimate, the published figure and the error, then the median absolute
percentage error per kind next to the project's targets. Run: python benchmarks/accuracy.py [-q]
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from expert.catalog import Catalog, load_catalog
from expert.core.yamlio import load_yaml_file
from expert.estimate import GIB, Config, estimate, weight_bytes

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = ROOT / "tests" / "validation" / "measurements.yaml"
TARGETS = {"weights_gib": 5, "memory_gib": 5, "decode_tokens_per_s": 20, "prefill_tokens_per_s": 30,
           "train_tokens_per_s": 30, "mfu": 30}
ENGINES = {"llama.cpp": "llama.cpp", "vllm": "vllm", "tensorrt-llm": "vllm", "transformers": "transformers",
           "mlx": "llama.cpp"}


@dataclass
class Scored:
    id: str
    kind: str
    published: float
    estimated: float | None
    skipped: str | None = None

    @property
    def error_pct(self) -> float:
        return (self.estimated - self.published) / self.published * 100


def _to_gib(value: float, unit: str) -> float:
    return value * 1e9 / GIB if unit == "GB" else value


def score_record(cat: Catalog, r: dict) -> Scored:
    kind = r["kind"]
    value = float(r["value"])
    model = cat.models[r["model"]]
    prec = cat.precisions[r["precision"]]
    if kind == "weights_gib":
        return Scored(r["id"], kind, _to_gib(value, r["unit"]), weight_bytes(model, prec) / GIB)
    if r.get("not_modelled"):
        return Scored(r["id"], kind, value, None, r["not_modelled"])
    if r.get("batch") is None and kind in ("decode_tokens_per_s", "prefill_tokens_per_s"):
        return Scored(r["id"], kind, value, None, "batch chosen by the server (max-throughput run)")
    gpu = cat.gpus[r["gpu"]]
    engine = ENGINES.get(r.get("engine") or "", None)
    training = r["workload"] in ("lora", "qlora", "finetune", "training")
    ctx = r.get("context") or 128
    cfg = Config(model=model, gpu=gpu, count=int(r["count"]), precision=prec, workload=r["workload"],
                 context=int(ctx), batch=int(r.get("batch") or 1),
                 engine=None if training else engine)
    est = estimate(cat, cfg)
    if kind == "memory_gib":
        scope = r.get("scope", "total")
        got = est.memory_gib["per_gpu"] if scope == "per_gpu" else est.memory_gib["total"]
        return Scored(r["id"], kind, _to_gib(value, r["unit"]), got)
    if kind == "mfu":
        tps = est.throughput["train_tokens_per_s"]
        peak = (gpu.peak_tflops("bf16") or gpu.tflops_fp16) * 1e12
        attn = 6 * model.layers * cfg.context * model.attention_heads * model.head_dim
        mfu = tps * (6 * model.active_params + attn) / (peak * cfg.count)
        return Scored(r["id"], kind, value, mfu)
    key = kind.replace("_tokens_per_s", "_tokens_per_s")
    got = est.throughput[key]
    return Scored(r["id"], kind, value, got)


def score_all(cat: Catalog | None = None) -> list[Scored]:
    cat = cat or load_catalog()
    records = load_yaml_file(MEASUREMENTS)["records"]
    return [score_record(cat, r) for r in records]


def summary(scored: list[Scored]) -> dict[str, tuple[int, float]]:
    out = {}
    for kind in TARGETS:
        errs = [abs(s.error_pct) for s in scored if s.kind == kind and s.skipped is None]
        if errs:
            out[kind] = (len(errs), statistics.median(errs))
    return out


def main(argv: list[str]) -> int:
    scored = score_all()
    if "-q" not in argv:
        print(f"{'record':62} {'published':>11} {'estimate':>11} {'error':>8}")
        for s in scored:
            if s.skipped:
                print(f"{s.id[:62]:62} {s.published:11.2f} {'-':>11} skipped: {s.skipped}")
            else:
                print(f"{s.id[:62]:62} {s.published:11.2f} {s.estimated:11.2f} {s.error_pct:+7.1f}%")
        print()
    print(f"{'kind':24} {'records':>7} {'median |error|':>15} {'target':>7}")
    for kind, (n, med) in summary(scored).items():
        flag = "ok" if med <= TARGETS[kind] else "MISSED"
        print(f"{kind:24} {n:7d} {med:14.1f}% {TARGETS[kind]:6d}%  {flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
