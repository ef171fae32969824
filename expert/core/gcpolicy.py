"""Garbage-collector settings for batch runs (sweeps): many allocation-heavy requests over one long-lived
catalog, rule set and estimator memo."""

from __future__ import annotations

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
    """A one-shot command (expert/entry.py): the batch threshold from the first import on. Nothing is frozen:
    what a command loads is collected at exit like any process's memory."""
    gc.set_threshold(BATCH_GEN0_THRESHOLD, 20, 20)
