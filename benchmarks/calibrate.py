"""Fit the estimator's achievable fractions (facts/efficiency.yaml) to the validation set.

For each engine/stack it grid-searches the physical parameters of the decode formula
(bandwidth fraction, per-layer overhead) and the prefill MFU, minimising the median absolute
log error over the matching records, and prints the fitted values next to the current ones.
It never writes the catalog: a reviewer copies a value after reading the fit.
Run: python benchmarks/calibrate.py
"""

from __future__ import annotations

import copy
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import score_record  # noqa: E402

from expert.catalog import load_catalog  # noqa: E402
from expert.core.yamlio import load_yaml_file  # noqa: E402
from expert.estimate import engine_efficiency, pick_engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _key(cat, r) -> str | None:
    gpu = cat.gpus.get(r.get("gpu") or "")
    if gpu is None:
        return None
    engine = {"tensorrt-llm": "vllm", "mlx": "llama.cpp"}.get(r.get("engine"), r.get("engine"))
    engine = engine or pick_engine(gpu, cat.precisions[r["precision"]], r["workload"])
    return f"{engine}-{gpu.stack}"


def _loss(cat, records) -> float:
    errs = []
    for r in records:
        s = score_record(cat, r)
        if s.skipped is None and s.estimated and s.estimated > 0:
            errs.append(abs(math.log(s.estimated / s.published)))
    return statistics.median(errs) if errs else math.inf


def main() -> int:
    cat = load_catalog()
    records = load_yaml_file(ROOT / "tests" / "validation" / "measurements.yaml")["records"]
    for kind, section, grid in (
        ("decode_tokens_per_s", "decode",
         [{"bandwidth_fraction": b / 100, "layer_overhead_us": o}
          for b in range(50, 96, 3) for o in range(0, 260, 10)]),
        ("prefill_tokens_per_s", "prefill", [{"mfu": m / 100} for m in range(10, 96, 2)]),
    ):
        groups: dict[str, list] = {}
        for r in records:
            if r["kind"] == kind and r.get("batch") is not None and r.get("engine") != "transformers":
                k = _key(cat, r)
                if k:
                    groups.setdefault(k, []).append(r)
        for key, recs in sorted(groups.items()):
            gpu = cat.gpus[recs[0]["gpu"]]
            entry = engine_efficiency(cat, section, key.split("-")[0] if not key.startswith("llama.cpp")
                                      else "llama.cpp", gpu)
            original = copy.deepcopy(entry)
            best = (math.inf, None)
            for params in grid:
                entry.update(params)
                best = min(best, (_loss(cat, recs), tuple(sorted(params.items()))), key=lambda t: t[0])
            entry.clear()
            entry.update(original)
            now = _loss(cat, recs)
            print(f"{section:8} {key:18} n={len(recs):3}  current {dict((k, original[k]) for k, _ in best[1])} "
                  f"median |log err| {now:.3f}  ->  fitted {dict(best[1])} {best[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
