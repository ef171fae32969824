"""Speed benchmark (plain Python; tests never assert on time).

Reports medians over repeated runs:
- cold `expert advise --budget 20000 --model 13b` as a subprocess, and its ratio to the bare import of
  the dependencies (`import click, yaml, jinja2, durable.lang`) measured alternately in the same run: as the
  environment runs it, and with bytecode written and read (an installed package's case; an environment with
  PYTHONDONTWRITEBYTECODE=1 otherwise compiles the package from source on every run);
- in-process time per request split into estimator / engine / ranking / rendering, and the engine's
  time per candidate fact;
- sweep throughput (requests/s) over 1,000 and 10,000 generated requests with 1 and 2 processes;
- peak RSS and RSS growth over the sweep after each worker's warm-up (durable_rules' C memory is never
  freed: nothing may be registered per request);
- the number of candidate facts per request.

Each sweep runs three ways in the same run, so the ratios hold on a noisy machine:
- `optimised`: the default path (engine asked once per equivalence class, verdicts and estimates kept for the
  process), with the requests in the order `expert sweep` runs them (sweep.locality_order: requests that differ
  only in money side by side, so they share estimates);
- `plain`: the same code with GPU_EXPERT_NO_MEMO=1 and GPU_EXPERT_FRESH_FIRING=1 (every fact fired, every
  estimate computed);
- `baseline`: the code of --baseline REV (default: the last commit before the issue-16 work), checked out
  with `git worktree` into a temporary directory and imported from there (same dependencies).
Two request mixes: `random` (every request different) and `budget` (one model and workload over many
budgets, the sweep a buyer runs).

Run: python benchmarks/speed.py [--quick] [--baseline REV] [--sizes N,N] [--kinds random,budget] [--equivalence]
  --sizes: the sweep sizes (default 1000,10000; --quick 200); --kinds: the request mixes to sweep.
  --equivalence: check instead that the optimised path gives the plain path's advice over the whole scenario
  corpus and 1,000 generated requests (prints the count of differences; exit 1 if any).
"""

from __future__ import annotations

import multiprocessing
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
BASELINE_REV = "f515f42"  # the last commit before the issue-16 speed work
PLAIN_ENV = {"GPU_EXPERT_NO_MEMO": "1", "GPU_EXPERT_FRESH_FIRING": "1"}
MODELS = ["7b", "8b", "13b", "34b", "70b", "405b", "mixtral-8x7b", "qwen2.5-14b", "llama-3.2-3b"]
WORKLOADS = ["dev", "inference", "inference", "lora", "qlora", "finetune", "training"]


def _expert_cmd() -> list[str]:
    exe = shutil.which("expert", path=str(Path(sys.executable).parent)) or shutil.which("expert")
    return [exe] if exe else [sys.executable, "-m", "expert"]


DEPS_CMD = [sys.executable, "-c", "import click, yaml, jinja2, durable.lang"]


def _once(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    return time.perf_counter() - t


def cold_start(cmd: list[str], repeat: int, bytecode_dir: str | None = None) -> tuple[float, float]:
    """Medians of (bare dependency import, cold `cmd`), run alternately so that a busy machine slows both alike.

    The command imports this tree's package. With `bytecode_dir`, Python writes and reads bytecode there
    (PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE unset), as an installed package has it; without, the
    environment decides (with PYTHONDONTWRITEBYTECODE=1 every run compiles the package from source, while
    the dependencies' bytecode came with their install). One warm-up run each fills the caches."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if bytecode_dir:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = bytecode_dir
    _once(DEPS_CMD, env)
    _once(cmd, env)
    deps, cold = [], []
    for _ in range(repeat):
        deps.append(_once(DEPS_CMD, env))
        cold.append(_once(cmd, env))
    return statistics.median(deps), statistics.median(cold)


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


def budget_requests(n: int) -> list[dict]:
    """One buyer's sweep: a few model x workload pairs, each over a ladder of budgets."""
    pairs = [("8b", "inference"), ("70b", "inference"), ("8b", "lora"), ("70b", "finetune"), ("13b", "dev")]
    per = max(1, n // len(pairs))
    return [{"model": m, "workload": w, "budget": 3000 + i * (400_000 // per)} for m, w in pairs
            for i in range(per)][:n]


def requests_for(kind: str, n: int) -> list[dict]:
    return generated_requests(n) if kind == "random" else budget_requests(n)


_WORKER: dict[str, object] = {}  # the loaded catalog and rules (inherited by the workers), and RSS after warm-up


def _sweep_chunk(reqs: list[dict]) -> tuple[int, int, int, int]:
    from expert.decide.advice import advise
    from expert.request import build_request

    cat, rules = _WORKER["cat"], _WORKER["rules"]  # loaded before the fork (sweep)
    done = 0
    for kw in reqs:
        advise(cat, rules, build_request(cat, **kw)).to_dict(detail=False)
        done += 1
    # The warm-up is the worker's first chunk (a quarter of its requests with 1 process, an eighth with 2).
    _WORKER.setdefault("rss0", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return done, os.getpid(), int(_WORKER["rss0"]), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def sweep(n: int, procs: int, kind: str = "random") -> tuple[float, int, int]:
    """Requests/s, and the largest worker's RSS after its warm-up and at the end (KiB), as `expert sweep` runs
    them: this (fresh) process loads the catalog and rules, then forks the workers, which inherit them; the time
    counts from before the load. Called in a child interpreter (sweep_elsewhere) so that nothing this benchmark
    computed before is inherited. Each request gives what that tree's `expert sweep` writes: its row (`_run`,
    Advice.sweep_row), or in older trees the whole view they built the row from. The warm-up: a worker's first
    quarter of its own segment (run_parallel), or in older trees its first chunk."""
    reqs = requests_for(kind, n)
    try:  # the order `expert sweep` runs its rows in (absent in older trees, e.g. the baseline: input order)
        from expert.cli.sweep import locality_order
    except ImportError:
        pass
    else:
        reqs = locality_order(reqs)
    try:  # how `expert sweep` deals its rows to its workers (absent in older trees: the pool below)
        from expert.cli.sweep import _LOADED, run_parallel
    except ImportError:
        run_parallel = None
    fork = multiprocessing.get_context("fork")
    t = time.perf_counter()
    _load(_LOADED if run_parallel is not None else _WORKER)
    if run_parallel is not None:
        results, stats = run_parallel(reqs, procs, method="fork")
        dt = time.perf_counter() - t
        failed = [r["error"] for r in results if r.get("error")]
        if failed:
            raise SystemExit(f"sweep: {len(failed)} requests failed, e.g. {failed[0]}")
        worst = max(((a, b) for _, a, b in stats), key=lambda ab: ab[1] - ab[0])
        return len(results) / dt, worst[0], worst[1]
    # Older trees: contiguous runs of that order, four per worker, handed to whichever worker is free, as their
    # `expert sweep` dealt its rows.
    size = max(1, -(-len(reqs) // (procs * 4)))
    chunks = [reqs[i:i + size] for i in range(0, len(reqs), size)]
    with ProcessPoolExecutor(procs, mp_context=fork) as pool:
        results = list(pool.map(_sweep_chunk, chunks))
    dt = time.perf_counter() - t
    done = sum(r[0] for r in results)
    per_worker: dict[int, tuple[int, int]] = {}  # a worker reports the same warm-up RSS with each chunk
    for _, pid, rss0, end in results:
        per_worker[pid] = (rss0, max(end, per_worker.get(pid, (0, 0))[1]))
    worst = max(per_worker.values(), key=lambda ab: ab[1] - ab[0])
    return done / dt, worst[0], worst[1]


def _load(into: dict) -> None:
    from expert.store import load_all

    into["cat"], into["rules"] = load_all()
    try:  # what `expert sweep` does after loading (absent in older trees, e.g. the baseline)
        from expert.core.gcpolicy import for_batch
    except ImportError:
        pass
    else:
        for_batch()


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
        _forget_estimates()  # every candidate estimated and sized again, as a request unlike the last one is
        a = advise(cat, rules, req)
        t = time.perf_counter()
        render(a.to_dict(detail=False), "text")
        parts["rendering"].append(time.perf_counter() - t)
        for k in ("estimator", "engine", "ranking"):
            parts[k].append(a.timings[k])
        parts["facts"].append(len(a.candidates))
    return {k: statistics.median(v) for k, v in parts.items()}


def _forget_estimates() -> None:
    """Empty the process's estimate, serving and plan tables and the requests' shared builds (where the tree has
    them: the baseline may not), so that an in-process request computes what a first request of its kind does;
    the engine's registered rulesets and known classes stay, as in any process after its first request."""
    try:
        from expert.estimate import memo
    except ImportError:
        return
    for name in ("ESTIMATES", "PHYSICS", "SERVING", "PLANS"):
        table = getattr(memo, name, None)
        if table is not None:
            table.clear()
    import expert.candidates as candidates

    getattr(candidates, "_BUILDS", {}).clear()


def sweep_elsewhere(n: int, procs: int, kind: str, env: dict[str, str], pythonpath: Path | None) -> tuple:
    """The same sweep in a child interpreter: another code tree (baseline) or other switches (plain)."""
    e = {**os.environ, **env}
    if pythonpath is not None:
        e["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run([sys.executable, __file__, "--sweep-only", str(n), str(procs), kind], env=e, check=True,
                         capture_output=True, text=True, cwd=pythonpath or ROOT).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def baseline_tree(rev: str, dest: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(dest), rev], cwd=ROOT, check=True,
                   capture_output=True)
    return dest


def equivalence() -> int:
    """Optimised vs plain advice over the whole scenario corpus and 1,000 generated requests."""
    from expert.decide.advice import advise
    from expert.governance.scenarios import load_scenarios
    from expert.request import build_request
    from expert.store import load_all

    cat, rules = load_all()
    reqs = [sc.request for sc in load_scenarios()] + generated_requests(1000, seed=16)
    diffs = 0
    for kw in reqs:
        for k in PLAIN_ENV:
            os.environ[k] = "1"
        plain = advise(cat, rules, build_request(cat, **kw)).to_dict()
        for k in PLAIN_ENV:
            os.environ.pop(k, None)
        fast = advise(cat, rules, build_request(cat, **kw)).to_dict()
        diffs += plain != fast
    print(f"equivalence: {len(reqs)} requests ({len(reqs) - 1000} scenarios + 1,000 generated), "
          f"{diffs} with different advice")
    return 1 if diffs else 0


def _opt(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv: list[str]) -> int:
    if argv[:1] == ["--sweep-only"]:
        rate, rss_warm, rss_end = sweep(int(argv[1]), int(argv[2]), argv[3])
        print(rate, rss_warm, rss_end)
        return 0
    if "--equivalence" in argv:
        return equivalence()
    quick = "--quick" in argv
    rev = argv[argv.index("--baseline") + 1] if "--baseline" in argv else BASELINE_REV
    repeat = 3 if quick else 7
    cmd = _expert_cmd() + ["advise", "--budget", "20000", "--model", "13b"]
    import tempfile

    deps, cold = cold_start(cmd, repeat)
    print(f"cold `expert advise --budget 20000 --model 13b`: {cold * 1000:.0f} ms (median of {repeat})")
    print(f"bare dependency import:                         {deps * 1000:.0f} ms")
    print(f"ratio:                                          {cold / deps:.2f}x  (target <= 2.5x)")
    with tempfile.TemporaryDirectory(prefix="speed-pycache-") as pyc:
        deps_bc, cold_bc = cold_start(cmd, repeat, pyc)
    note = ("; PYTHONDONTWRITEBYTECODE is set here, so the lines above compile the package from source"
            if os.environ.get("PYTHONDONTWRITEBYTECODE") else "")
    print(f"  with bytecode (as installed{note}):")
    print(f"  cold {cold_bc * 1000:.0f} ms, bare import {deps_bc * 1000:.0f} ms, ratio {cold_bc / deps_bc:.2f}x")
    p = in_process(repeat * 3)
    total = p["estimator"] + p["engine"] + p["ranking"] + p["rendering"]
    print(f"\nin-process per request ({p['facts']:.0f} candidate facts): {total * 1000:.1f} ms")
    for k in ("estimator", "engine", "ranking", "rendering"):
        print(f"  {k:10} {p[k] * 1000:7.2f} ms")
    print(f"  whole request per candidate: {total / p['facts'] * 1000:.3f} ms")
    print(f"  engine per candidate fact: {p['engine'] / p['facts'] * 1000:.3f} ms  (target <= 0.1 ms)")
    sizes = [int(v) for v in _opt(argv, "--sizes", "200" if quick else "1000,10000").split(",")]
    kinds = _opt(argv, "--kinds", "random,budget").split(",")
    print()
    with tempfile.TemporaryDirectory(prefix="speed-baseline-") as tmp:
        base = baseline_tree(rev, Path(tmp) / "tree")
        try:
            for kind in kinds:
                for n in sizes:
                    for procs in (1, 2):
                        rate, rss_warm, rss_end = sweep_elsewhere(n, procs, kind, {}, None)
                        plain = sweep_elsewhere(n, procs, kind, PLAIN_ENV, None)[0]
                        old = sweep_elsewhere(n, procs, kind, {}, base)[0]
                        print(f"sweep {kind:6} {n:6} requests, {procs} process(es): optimised {rate:7.1f} req/s, "
                              f"plain {plain:7.1f} ({rate / plain:.2f}x), baseline {rev} {old:7.1f} "
                              f"({rate / old:.2f}x)  [peak RSS {rss_end / 1024:.0f} MiB, growth after warm-up "
                              f"{(rss_end - rss_warm) / 1024:.1f} MiB]")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB;"
          f" cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
