"""Per-process memo of the estimator's pure functions, shared by every request of a sweep.

An estimate depends only on the catalog and the Config; a sweep of thousands of requests asks for the same
model x GPU x count x precision again and again. Entries are keyed by the Config's values and checked by
the identity of the catalog, model, GPU and precision objects they were computed from, so a catalog with
overlaid prices or a model read from a config.json never reuses another's numbers. Results are shared
objects: callers must not mutate them (none does; tests/test_speed_paths.py compares with fresh values).
GPU_EXPERT_NO_MEMO=1 turns the memo off (the un-optimised path the equivalence test compares against).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from itertools import islice
from typing import TypeVar

from ..catalog import Catalog
from .config import Config

T = TypeVar("T")
NO_MEMO_ENV = "GPU_EXPERT_NO_MEMO"
# Entries per table before its older half is dropped: bounds the memory a long sweep holds (an Estimate with
# its notes and plan is a few kB; a Serving a few hundred bytes).
LIMITS = {"estimates": 5_000, "physics": 5_000, "serving": 50_000, "plans": 2_000}


def memo_disabled() -> bool:
    return os.environ.get(NO_MEMO_ENV, "").strip() not in ("", "0")


_off = memo_disabled()


def refresh() -> None:
    """Re-read GPU_EXPERT_NO_MEMO (once per request, not once per lookup: the lookups are hot)."""
    global _off
    _off = memo_disabled()


class Memo:
    """One table of memoised results (estimate, serve, ...). `priced`: the result depends on the electricity
    price, currency, PUE and deployment (only power and cost do); the others are keyed without them, so every
    price basis of a sweep shares them."""

    def __init__(self, limit: int, priced: bool = False) -> None:
        self._d: dict[tuple, tuple] = {}
        self.limit = limit
        self.priced = priced

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()

    def get(self, cat: Catalog, cfg: Config, extra: tuple, compute: Callable[[], T]) -> T:
        if _off:
            return compute()
        # Built here, not kept on the Config: most Configs are asked once (a cached attribute costs more).
        key = (cfg.model.id, cfg.gpu.id, cfg.count, cfg.precision.id, cfg.workload, cfg.context, cfg.batch,
               cfg.engine, cfg.kv_cache) + extra
        if self.priced:
            key += (cfg.electricity_per_kwh, cfg.currency, cfg.pue, cfg.deployment)
        hit = self._d.get(key)
        if (hit is not None and hit[0] is cat and hit[1] is cfg.model and hit[2] is cfg.gpu
                and hit[3] is cfg.precision):
            return hit[4]
        value = compute()
        if len(self._d) >= self.limit:
            # Drop the oldest half (dicts keep insertion order): a sweep wider than the table keeps its recent
            # entries instead of starting again from nothing.
            for k in list(islice(self._d, len(self._d) // 2)):
                del self._d[k]
        self._d[key] = (cat, cfg.model, cfg.gpu, cfg.precision, value)
        return value


class Kept:
    """A bounded table of a pure function's results per two objects it reads (by identity: an id is reused once
    its object is freed, so each hit is checked against them) and plain values; the whole table is dropped when
    full. For the small caches outside the Config-keyed tables (a system's power draw, a search's layouts); off
    with them (GPU_EXPERT_NO_MEMO)."""

    def __init__(self, limit: int) -> None:
        self._d: dict[tuple, tuple] = {}
        self.limit = limit

    def __len__(self) -> int:
        return len(self._d)

    def get(self, a: object, b: object, key: tuple, compute: Callable[[], T]) -> T:
        if _off:
            return compute()
        k = (id(a), id(b)) + key
        hit = self._d.get(k)
        if hit is not None and hit[0] is a and hit[1] is b:
            return hit[2]
        value = compute()
        if len(self._d) >= self.limit:
            self._d.clear()
        self._d[k] = (a, b, value)
        return value


ESTIMATES = Memo(LIMITS["estimates"], priced=True)
PHYSICS = Memo(LIMITS["physics"])  # memory, speed and plan of an estimate: independent of prices and power
SERVING = Memo(LIMITS["serving"])  # serving at a load and the load-independent capacity: no prices either
PLANS = Memo(LIMITS["plans"])  # the training-plan search (plan.choose)
