"""The per-user cache of validated data: identical content round-trips; any change misses."""

from __future__ import annotations

import json

from expert.catalog import load_catalog
from expert.rulelang import load_rules
from expert.store import cache

from .conftest import ROOT


def test_cached_data_restores_to_equal_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    cat, rules = load_catalog(ROOT / "facts"), load_rules(ROOT / "rules")
    key = cache.digest(ROOT / "facts", ROOT / "rules")
    cache.write(key, cat, rules)
    got_cat, got_rules = cache.read(key)
    assert got_cat == cat
    assert [r.raw for r in got_rules.rules] == [r.raw for r in rules.rules]
    assert [(r.id, r.action, r.line, r.file) for r in got_rules.rules] == \
        [(r.id, r.action, r.line, r.file) for r in rules.rules]
    assert got_rules.digest == rules.digest
    assert isinstance(got_cat.gpus["h100-sxm"].counts, tuple)


def test_a_changed_file_changes_the_key(facts_copy, rules_copy):
    before = cache.digest(facts_copy, rules_copy)
    p = facts_copy / "gpus.yaml"
    p.write_text(p.read_text() + "\n")
    assert cache.digest(facts_copy, rules_copy) != before


def test_a_damaged_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    (tmp_path / "gpu-expert" / "data").mkdir(parents=True)
    (tmp_path / "gpu-expert" / "data" / "abc.json").write_text(json.dumps({"catalog": {}}))
    assert cache.read("abc") is None
    assert cache.read("missing") is None
