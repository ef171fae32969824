"""Garbage-collector settings for batch runs (sweeps): many allocation-heavy requests over one long-lived
catalog, rule set and estimator memo."""

from __future__ import annotations

import atexit
import gc

# Young-generation threshold for a batch: a request allocates tens of thousands of short-lived objects, and at
# CPython's default (700) the collector runs hundreds of times per request, each time walking the survivors.
# The count is allocations less frees of tracked objects, and it restarts from 0 at each collection (frees then
# do not lower it): while the estimator's memo tables fill, a low threshold collects every few requests, and
# every 20th collection walks the whole middle generation. Measured over 950 random requests in one process
# (benchmarks, 2 cores): 50,000 -> 43 collections, 2.89 s of 63.4 s, peak RSS 108 MiB; 200,000 -> 1 collection,
# 0.16 s of 60.2 s, peak RSS 114 MiB.
BATCH_GEN0_THRESHOLD = 200_000


def for_batch() -> None:
    """Move what is loaded so far out of the collector's reach (gc.freeze: the catalog, the rules, the
    compiled rule sets; CPython's documented pattern before forking workers, which then share those pages)
    and collect young objects less often. Nothing here changes any result; measured by benchmarks/speed.py."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(BATCH_GEN0_THRESHOLD, 20, 20)


def for_command() -> None:
    """A one-shot command (expert/entry.py): the batch threshold from the first import on, and nothing left for
    the collector at exit. Python's finalization runs a full collection over every object the process still holds
    (modules, catalog, memo tables, candidates) before the memory goes back to the system anyway: measured on a
    cold `expert advise` (2 cores), 96-158 ms after the last line was written, against 13-15 ms with everything
    frozen first. The freeze is registered first, so it runs after every other exit handler (atexit is LIFO: the
    verdict store's is registered later and writes first)."""
    gc.set_threshold(BATCH_GEN0_THRESHOLD, 20, 20)
    atexit.register(gc.freeze)
