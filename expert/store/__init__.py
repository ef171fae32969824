"""Stage 6: facts and rules, loaded and validated once per process (and per source directory).

A per-user cache keyed by the hash of the files (expert/cache.py) lets a new process skip parsing
and validating data it has already validated."""

from __future__ import annotations

from pathlib import Path

from ..catalog import Catalog, load_catalog
from ..core.errors import RuleError
from ..core.paths import data_dir
from ..core.policy import load_policy
from ..rulelang import RuleSet, check_sources, load_rules
from ..rulelang.load import add_compiled_bundle
from . import cache

_CACHE: dict[tuple[str, str], tuple[Catalog, RuleSet]] = {}


def policy_problems(rules_dir: Path, cat: Catalog) -> list[str]:
    """The decision policy beside the rules loads, and every document its bases cite is in the registry."""
    pol = load_policy(rules_dir)
    return [f"{pol.file}: policy: a basis cites unknown source id {sid!r} (define it in a facts/*.yaml `sources:`)"
            for sid in pol.cited_sources() if sid not in cat.sources]


def load_all(facts_dir: Path | None = None, rules_dir: Path | None = None) -> tuple[Catalog, RuleSet]:
    facts = facts_dir or data_dir("facts")
    rules = rules_dir or data_dir("rules")
    key = (str(facts), str(rules))
    if key not in _CACHE:
        file_key = cache.digest(facts, rules)
        loaded = cache.read(file_key) if file_key else None
        if loaded is None:
            loaded = (load_catalog(facts), load_rules(rules))
            problems = check_sources(loaded[1], loaded[0].sources) + policy_problems(rules, loaded[0])
            if problems:
                raise RuleError(problems[0])
            if file_key:
                cache.write(file_key, *loaded)
                cache.because_bundle(loaded[1])()  # loading compiled every `because`: store their code too
        else:
            add_compiled_bundle(cache.because_bundle(loaded[1]))  # read when a template is first rendered
        _CACHE[key] = loaded
    return _CACHE[key]
