"""`expert sweep FILE`: many requests (YAML, CSV or JSONL, one per row), one output line each, on every core.

A row's keys are advise's option names (`budget`, `model`, `prompt-tokens` or `prompt_tokens`, `stack`,
plus `only` / `exclude`); a row that fails (bad input, an unknown model) gets its error in its output line
and the sweep goes on. Identical requests are computed once, and requests that differ only in money (budget,
currency, electricity, years...) run next to each other in one worker: they share their estimates (memory, speed,
training plans do not depend on prices), which the estimator keeps for the process in bounded tables, so a sweep
in input order would recompute them once the tables have turned over. Beyond that, requests of one model, workload
and context run together whatever their other keys (a batch size, a user count): most of their estimates are the
same too. Output stays in input order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..core.docschema import SCHEMA_VERSION
from ..core.errors import ExpertError, InputError
from .requestopts import option_names

MAX_ROWS = 1_000_000
MAX_FILE_BYTES = 64 * 2**20
EXTRA_KEYS = {"only": "only", "exclude": "exclude"}
CSV_COLUMNS = ["schema_version", "row", "model", "workload", "budget", "currency", "pick", "presented", "gpu", "count",
               "replicas", "precision", "capex", "gpu_capex", "platform_capex", "tco", "cost_per_million_tokens",
               "train_days", "run_cost", "delivers", "unit_cost", "buy_or_rent", "nothing_fits_budget", "error"]

SWEEP_HELP = """Run many requests from a YAML, CSV or JSONL file and write one result per request.

Each row is one request; its keys are advise's option names (budget, model, workload, context,
prompt-tokens, users, currency, region, ... plus only and exclude). Output is JSONL (default) or CSV,
one line per row in input order, with the pick, its capex and decision numbers, or the row's error:
a bad row never stops the sweep. Rows run on all cores (--jobs); a progress line goes to stderr when
it is a terminal.

"""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a sweep file, by its suffix: .yaml/.yml (a list, or {requests: [...]}), .csv, .jsonl/.json."""
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"sweep {path}: cannot read: {exc.strerror}") from None
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"sweep {path}: {st.st_size:,} bytes is too large (at most {MAX_FILE_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"sweep {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"sweep {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict) and isinstance(data.get("requests"), list):
            data = data["requests"]
        if not isinstance(data, list):
            raise InputError(f"sweep {path}: expected a list of requests (or 'requests: [...]')")
        rows = data
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = [{k.strip(): (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in r.items() if k}
                for r in reader]
    elif suffix in (".jsonl", ".json", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                rows.append({"__error__": f"line {n}: not valid JSON: {exc.msg}"})
    else:
        raise InputError(f"sweep {path}: unknown file type {suffix or '(none)'!r}; expected .yaml, .csv or .jsonl")
    if len(rows) > MAX_ROWS:
        raise InputError(f"sweep {path}: {len(rows):,} rows, at most {MAX_ROWS:,}")
    return rows


def _normalise(row: Any, names: dict[str, str]) -> dict[str, Any]:
    """A row's keys as build_request keywords; raises InputError naming an unknown key."""
    if not isinstance(row, dict):
        raise InputError(f"a row must be a mapping of option names to values, got {type(row).__name__}")
    if "__error__" in row:
        raise InputError(row["__error__"])
    out: dict[str, Any] = {}
    for key, value in row.items():
        k = str(key).strip().lower()
        name = names.get(k) or names.get(k.replace("_", "-")) or EXTRA_KEYS.get(k)
        if name is None:
            allowed = sorted({n.replace("_", "-") for n in names.values()} | set(EXTRA_KEYS))
            raise InputError(f"unknown key {str(key)[:60]!r}; allowed: {', '.join(allowed)}")
        if value is not None:
            out[name] = value if isinstance(value, (int, float, bool)) else str(value)
    for need in ("budget", "model"):
        if need not in out:
            raise InputError(f"--{need} is missing")
    return out


# Options that change only prices, the budget test and the candidate pool's legality, never an estimate's physics:
# requests equal in everything else are run side by side (see the module docstring).
_MONEY_KEYS = frozenset({"budget", "currency", "electricity", "hours_per_day", "years", "region", "domicile",
                         "condition"})


def _number(v: Any) -> tuple[int, Any]:
    try:
        return 0, float(v)
    except (TypeError, ValueError):
        return 1, str(v)  # "20k" and the like: grouped apart, in text order (locality only, never correctness)


# What every estimate of a request depends on, outermost: requests of one model and workload run together, so the
# memo tables (bounded: a few requests' worth of estimates) still hold their estimates when the next one comes.
_LEAD = {"model": 0, "workload": 1, "context": 2}


def locality_key(kw: dict[str, Any]) -> tuple:
    """Sort key putting requests that share estimates next to each other, then by currency and budget (a budget
    ladder in order: the deployment inferred from the budget changes at most once along it)."""
    shape = tuple(sorted(((k, str(v)) for k, v in kw.items() if k not in _MONEY_KEYS),
                         key=lambda kv: (_LEAD.get(kv[0], len(_LEAD)), kv)))
    return shape, str(kw.get("currency", "")), _number(kw.get("budget"))


def locality_order(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests in the order a sweep runs them (stable: equal keys keep their input order)."""
    return sorted(requests, key=locality_key)


# Set in the parent before the pool forks: the catalogs and rules, loaded and validated once.
_LOADED: dict[str, Any] = {}


def _loaded() -> tuple[Any, Any]:
    """The catalog and rules the command loaded (a forked worker inherits them), else the default ones."""
    if "cat" not in _LOADED:
        from ..store import load_all

        _LOADED["cat"], _LOADED["rules"] = load_all()
    return _LOADED["cat"], _LOADED["rules"]


def _run(kwargs: dict[str, Any]) -> dict[str, Any]:
    """One request -> its result fields (or its error). Never raises for bad input."""
    from ..decide.advice import advise
    from ..request import build_request
    from .requestopts import gpu_pool

    try:
        cat, rules = _loaded()
        kw = dict(kwargs)
        pool = gpu_pool(cat, kw.pop("only", None), kw.pop("exclude", None))
        req = build_request(cat, **kw)
        adv = advise(cat, rules, req, gpus=pool)
        return adv.sweep_row()
    except ExpertError as exc:
        return {"error": str(exc)}


def run_sweep(rows: list[Any], names: dict[str, str], jobs: int, progress: Any = None) -> list[dict[str, Any]]:
    """Every row's output line, in input order; identical requests are computed once."""
    keyed: list[tuple[int, Any, str | None, str | None]] = []  # (row, input, request key, error)
    unique: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows, 1):
        try:
            kw = _normalise(row, names)
        except InputError as exc:
            keyed.append((i, row, None, str(exc)))
            continue
        key = json.dumps(kw, sort_keys=True, default=str)
        unique.setdefault(key, kw)
        keyed.append((i, row, key, None))
    results: dict[str, dict[str, Any]] = {}
    todo = sorted(unique.items(), key=lambda item: locality_key(item[1]))
    if len(todo) > 1:
        from ..core.gcpolicy import for_batch

        _loaded()
        for_batch()  # before the fork: the workers share the frozen catalog and rules
    if jobs > 1 and len(todo) > 1:
        got, _ = run_parallel([kw for _, kw in todo], min(jobs, len(todo)), progress)
        results.update(zip((k for k, _ in todo), got, strict=True))
    else:
        for n, (key, kw) in enumerate(todo, 1):
            results[key] = _run(kw)
            if progress:
                progress(n, len(todo))
    out = []
    for i, row, key, err in keyed:
        res = {"error": err} if key is None else results[key]
        out.append({"schema_version": SCHEMA_VERSION, "row": i, **res,
                    "input": row if isinstance(row, dict) else repr(row)[:200]})
    return out


# Requests a worker claims at a time: few enough that the last ones balance the workers, enough that the
# claiming (a lock) and the results' trip through the queue stay small next to a request (6-60 ms).
BATCH = 4
POLL_S = 1.0  # how often the parent, waiting for results, checks that no worker has died


def segments(requests: list[dict[str, Any]], workers: int) -> list[tuple[int, int]]:
    """Each worker's contiguous run of the locality order (start, end): equal shares, each cut moved to the
    nearest start of a group of requests sharing estimates (locality_key's shape) within an eighth of a share,
    so that a group is not split between two workers, which would each compute its estimates."""
    n = len(requests)
    shapes = [locality_key(kw)[0] for kw in requests]
    starts = [i for i in range(1, n) if shapes[i] != shapes[i - 1]]
    cuts = [0]
    for k in range(1, workers):
        t = round(k * n / workers)
        near = min((i for i in starts if abs(i - t) <= n / workers / 8), key=lambda i: (abs(i - t), i), default=t)
        cuts.append(min(max(near, cuts[-1]), n))
    cuts.append(n)
    return list(zip(cuts, cuts[1:], strict=False))


def run_parallel(requests: list[dict[str, Any]], workers: int, progress: Any = None,
                 method: str | None = None) -> tuple[list[dict[str, Any]], list[tuple[int, int, int]]]:
    """Each request's result (as _run gives it), in order, computed by `workers` processes; and per worker its
    pid, its peak RSS (KiB) after its first quarter of its run and at the end.

    Each worker runs its own segment of the order front to back; one that finishes takes what is left of
    another's from the back (the segment with the most left, then the same one while it lasts), BATCH requests
    at a time. A group of requests sharing estimates is so split between workers at most where one runs out of
    its own, instead of at every chunk a pool deals (a worker that gets part of a group computes its estimates
    again), and no worker idles while requests wait. `method`: the start method (default fork where the platform
    has it: the workers inherit the loaded catalog and rules)."""
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context(method or ("fork" if "fork" in mp.get_all_start_methods() else None))
    bounds = segments(requests, workers)
    lock = ctx.Lock()
    lo = ctx.RawArray("q", [a for a, _ in bounds])
    hi = ctx.RawArray("q", [b for _, b in bounds])
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(w, requests, lo, hi, lock, out, (b - a) // 4), daemon=True)
             for w, (a, b) in enumerate(bounds)]
    for p in procs:
        p.start()
    results: list[Any] = [None] * len(requests)
    stats: list[tuple[int, int, int]] = []
    done = 0
    try:
        while len(stats) < len(procs):
            try:
                item = out.get(timeout=POLL_S)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise ExpertError(f"sweep: a worker process died (exit code {dead[0].exitcode}); "
                                      "run again with --jobs 1 to see the failing request") from None
                continue
            if item[0] == "done":
                stats.append(item[1])
                continue
            for i, res in item[1]:
                results[i] = res
            done += len(item[1])
            if progress:
                progress(done, len(requests))
    finally:
        for p in procs:
            if p.is_alive() and len(stats) < len(procs):
                p.terminate()
            p.join()
    return results, stats


def _worker(w: int, requests: list[dict[str, Any]], lo: Any, hi: Any, lock: Any, out: Any, warm: int) -> None:
    try:
        import resource
    except ImportError:  # not on Windows: no RSS figures
        resource = None

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource else 0

    if "cat" not in _LOADED:  # a spawned worker (no fork): load before the first request, as run_sweep does
        from ..core.gcpolicy import for_batch

        _loaded()
        for_batch()
    victim, ran, rss0 = w, 0, 0
    while True:
        with lock:
            if lo[w] < hi[w]:
                a = lo[w]
                b = lo[w] = min(a + BATCH, hi[w])
            else:
                if lo[victim] >= hi[victim]:
                    victim = max(range(len(lo)), key=lambda v: hi[v] - lo[v])
                    if lo[victim] >= hi[victim]:
                        break
                b = hi[victim]
                a = hi[victim] = max(lo[victim], b - BATCH)
        out.put(("ran", [(i, _run(requests[i])) for i in range(a, b)]))
        ran += b - a
        if not rss0 and ran >= warm:
            rss0 = rss()
    out.put(("done", (os.getpid(), rss0 or rss(), rss())))


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def register(cli: click.Group, advise: click.Command, data_options: Any, load: Any, emit: Any) -> None:
    @cli.command("sweep", help=SWEEP_HELP)
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--format", "fmt", default="jsonl", show_default=True, type=click.Choice(["jsonl", "csv"]))
    @click.option("--output", default=None, help="Write to this file instead of standard output.")
    @click.option("--jobs", default=None, type=click.IntRange(1, 256),
                  help="Worker processes (default: all cores, os.cpu_count()).")
    @data_options
    def sweep(file: Path, fmt: str, output: str | None, jobs: int | None) -> None:
        _LOADED["cat"], _LOADED["rules"] = load()  # --facts-dir / --prices, validated once; workers inherit them
        rows = read_rows(file)
        tty = _stderr_is_tty()

        def progress(n: int, total: int) -> None:
            click.echo(f"\rsweep: {n}/{total} requests ({n * 100 // total} %)", err=True,
                       nl=n == total)

        lines = run_sweep(rows, option_names(advise), jobs or os.cpu_count() or 1, progress if tty else None)
        if fmt == "jsonl":
            text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            for line in lines:
                w.writerow({k: line.get(k) for k in CSV_COLUMNS})
            text = buf.getvalue()
        emit(text, output)
