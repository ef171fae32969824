"""How well the GPU catalog is sourced: numeric facts backed by a primary document, secondary sources cited."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.schema import numeric_paths
from .model import Catalog, Gpu, Source

PRIMARY = ("primary", "primary_quoted")
SECONDARY = ("secondary", "secondary_weak")


@dataclass(frozen=True)
class SourceReport:
    numeric_facts: int  # numeric fields over all GPU entries
    primary_facts: int  # of those, backed by a primary source that has an address
    secondary_sources: int  # distinct secondary sources the GPU entries cite
    cited_sources: int  # distinct sources the GPU entries cite

    @property
    def primary_share(self) -> float:
        return self.primary_facts / self.numeric_facts if self.numeric_facts else 1.0

    def line(self) -> str:
        return (f"sources: {self.primary_facts} of {self.numeric_facts} numeric GPU facts "
                f"({self.primary_share:.0%}) cite a primary document with an address; "
                f"{self.secondary_sources} of {self.cited_sources} cited sources are secondary")


def _is_primary(src: Source) -> bool:
    # A vendor document counts only where a reader can open it: a url or a repository file.
    return src.verification in PRIMARY and bool(src.address())


def fact_sources(gpu: Gpu, path: str) -> tuple[str, ...]:
    """Source ids backing one numeric field: its own key in `sources:`, else its group's key."""
    src = gpu.raw.get("sources") or {}
    return tuple(src.get(path) or src.get(path.split(".")[0]) or ())


def source_report(cat: Catalog) -> SourceReport:
    """Count, over every GPU entry, numeric facts with a primary source and the secondary sources cited."""
    total = primary = 0
    cited: set[str] = set()
    for g in cat.gpus.values():
        cited.update(g.sources)
        for path in numeric_paths(g.raw):
            total += 1
            if any(_is_primary(cat.sources[s]) for s in fact_sources(g, path) if s in cat.sources):
                primary += 1
    secondary = sum(1 for s in cited if s in cat.sources and cat.sources[s].verification in SECONDARY)
    return SourceReport(total, primary, secondary, len(cited))
