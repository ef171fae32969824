"""Facts and rules, loaded and validated once per process (and per source directory)."""

from __future__ import annotations

from pathlib import Path

from .catalog import Catalog, load_catalog
from .rules import RuleSet, load_rules

_CACHE: dict[tuple[str, str], tuple[Catalog, RuleSet]] = {}


def load_all(facts_dir: Path | None = None, rules_dir: Path | None = None) -> tuple[Catalog, RuleSet]:
    key = (str(facts_dir), str(rules_dir))
    if key not in _CACHE:
        _CACHE[key] = (load_catalog(facts_dir), load_rules(rules_dir))
    return _CACHE[key]
