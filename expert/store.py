"""Facts and rules, loaded and validated once per process (and per source directory)."""

from __future__ import annotations

from pathlib import Path

from .catalog import Catalog, load_catalog
from .paths import data_dir
from .rules import RuleSet, load_rules

_CACHE: dict[tuple[str, str], tuple[Catalog, RuleSet]] = {}


def load_all(facts_dir: Path | None = None, rules_dir: Path | None = None) -> tuple[Catalog, RuleSet]:
    facts = facts_dir or data_dir("facts")
    rules = rules_dir or data_dir("rules")
    key = (str(facts), str(rules))
    if key not in _CACHE:
        _CACHE[key] = (load_catalog(facts), load_rules(rules))
    return _CACHE[key]
