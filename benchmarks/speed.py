"""Speed benchmark (plain Python; tests never assert on time).

Reports medians over repeated runs:
- cold `expert advise --budget 20000 --model 13b` as a subprocess, and its ratio to the bare import of
  the dependencies (`import click, yaml, jinja2, durable.lang`) measured in the same run;
- in-process time per request split into estimator / engine / ranking / rendering, and the engine's
  time per candidate fact;
- sweep throughput (requests/s) over 1,000 and 10,000 generated requests with 1 and 2 processes;
- peak RSS and RSS growth over the sweep (durable_rules' C memory is never freed: nothing may be
  registered per request);
- the number of candidate facts per request.

Run: python benchmarks/speed.py [--quick]
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["7b", "8b", "13b", "34b", "70b", "405b", "mixtral-8x7b", "qwen2.5-14b", "llama-3.2-3b"]
WORKLOADS = ["dev", "inference", "inference", "lora", "qlora", "finetune", "training"]


def _expert_cmd() -> list[str]:
    exe = shutil.which("expert", path=str(Path(sys.executable).parent)) or shutil.which("expert")
    return [exe] if exe else [sys.executable, "-m", "expert.cli"]


def _wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def generated_requests(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append({
            "model": rng.choice(MODELS), "workload": rng.choice(WORKLOADS),
            "budget": round(10 ** rng.uniform(3, 5.7)), "context": rng.choice([None, 2048, 4096]),
            "batch": rng.choice([1, 1, 4, 16]), "currency": rng.choice(["USD", "USD", "CNY"]),
            "region": rng.choice(["global", "global", "china"]),
        })
    return out


def _sweep_chunk(reqs: list[dict]) -> tuple[int, int, int]:
    from expert.decide.advice import advise
    from expert.request import build_request
    from expert.store import load_all

    cat, rules = load_all()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = 0
    for i, kw in enumerate(reqs):
        advise(cat, rules, build_request(cat, **kw)).to_dict(detail=False)
        done += 1
        if i == len(reqs) // 10:
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after warm-up
    return done, rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def sweep(n: int, procs: int) -> tuple[float, int, int]:
    reqs = generated_requests(n)
    chunks = [reqs[i::procs] for i in range(procs)]
    t = time.perf_counter()
    if procs == 1:
        results = [_sweep_chunk(reqs)]
    else:
        with ProcessPoolExecutor(procs) as pool:
            results = list(pool.map(_sweep_chunk, chunks))
    dt = time.perf_counter() - t
    done = sum(r[0] for r in results)
    return done / dt, max(r[1] for r in results), max(r[2] for r in results)


def in_process(repeat: int) -> dict[str, float]:
    from expert.decide.advice import advise
    from expert.render import render
    from expert.request import build_request
    from expert.store import load_all

    cat, rules = load_all()
    req = build_request(cat, model="13b", budget=20000)
    advise(cat, rules, req)  # registers the rulesets once
    parts: dict[str, list[float]] = {"estimator": [], "engine": [], "ranking": [], "rendering": [], "facts": []}
    for _ in range(repeat):
        a = advise(cat, rules, req)
        t = time.perf_counter()
        render(a.to_dict(detail=False), "text")
        parts["rendering"].append(time.perf_counter() - t)
        for k in ("estimator", "engine", "ranking"):
            parts[k].append(a.timings[k])
        parts["facts"].append(len(a.candidates))
    return {k: statistics.median(v) for k, v in parts.items()}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    repeat = 3 if quick else 7
    cmd = _expert_cmd() + ["advise", "--budget", "20000", "--model", "13b"]
    deps = _wall([sys.executable, "-c", "import click, yaml, jinja2, durable.lang"], repeat)
    cold = _wall(cmd, repeat)
    print(f"cold `expert advise --budget 20000 --model 13b`: {cold * 1000:.0f} ms (median of {repeat})")
    print(f"bare dependency import:                         {deps * 1000:.0f} ms")
    print(f"ratio:                                          {cold / deps:.2f}x  (target <= 4x)")
    p = in_process(repeat * 3)
    total = p["estimator"] + p["engine"] + p["ranking"] + p["rendering"]
    print(f"\nin-process per request ({p['facts']:.0f} candidate facts): {total * 1000:.1f} ms")
    for k in ("estimator", "engine", "ranking", "rendering"):
        print(f"  {k:10} {p[k] * 1000:7.2f} ms")
    print(f"  engine per candidate fact: {p['engine'] / p['facts'] * 1000:.3f} ms  (target <= 0.1 ms)")
    sizes = [1000] if quick else [1000, 10000]
    print()
    for n in sizes:
        for procs in (1, 2):
            rate, rss_warm, rss_end = sweep(n, procs)
            print(f"sweep {n:6} requests, {procs} process(es): {rate:7.1f} requests/s  "
                  f"(peak RSS {rss_end / 1024:.0f} MiB, growth after warm-up {(rss_end - rss_warm) / 1024:.1f} MiB)")
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB;"
          f" cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
