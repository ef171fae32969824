"""Garbage-collector settings for batch runs (sweeps): many allocation-heavy requests over one long-lived
catalog, rule set and estimator memo."""

from __future__ import annotations

import gc

# Young-generation threshold for a batch: a request allocates tens of thousands of short-lived objects, and at
# CPython's default (700) the collector runs hundreds of times per request, each time walking the survivors.
BATCH_GEN0_THRESHOLD = 50_000


def for_batch() -> None:
    """Move what is loaded so far out of the collector's reach (gc.freeze: the catalog, the rules, the
    compiled rule sets; CPython's documented pattern before forking workers, which then share those pages)
    and collect young objects less often. Nothing here changes any result; measured by benchmarks/speed.py."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(BATCH_GEN0_THRESHOLD, 20, 20)
