"""The engine's answers per class kept between processes (rulelang/verdictstore.py): a later process asks
durable_rules only about classes new to it, gets the firings a fresh engine gets, and ignores a store that is
damaged, not this rule set's, or turned off."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expert.candidates import build_candidates
from expert.core import cachedir
from expert.request import build_request
from expert.rulelang import engine as engine_mod
from expert.rulelang import verdictstore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    monkeypatch.delenv(engine_mod.FRESH_ENV, raising=False)
    monkeypatch.setattr(cachedir, "_warned", set())
    return tmp_path / "xdg" / "gpu-expert" / "engine"


def _asked(monkeypatch, eng):
    calls = []
    real = eng._assert

    def counting(*a):
        calls.append(len(a[-1]))
        return real(*a)

    monkeypatch.setattr(eng, "_assert", counting)
    return calls


def test_a_later_engine_answers_known_classes_from_the_store(cat, rules, store, monkeypatch):
    cands = build_candidates(cat, build_request(cat, model="13b", budget=20000))
    first = engine_mod.RuleEngine()
    fired = first.fire_candidates(rules, cat, cands)
    first._persist()
    assert len(list(store.glob("*.verdicts"))) == 1
    later = engine_mod.RuleEngine()
    asked = _asked(monkeypatch, later)
    assert later.fire_candidates(rules, cat, cands) == fired
    assert asked == [] and later._host is None  # durable neither asked nor started
    assert engine_mod.RuleEngine().fire_candidates(rules, cat, cands, fresh=True) == fired
    # Another request: only the classes new to the store are asserted.
    other = build_candidates(cat, build_request(cat, model="70b", budget=60000))
    want = engine_mod.RuleEngine().fire_candidates(rules, cat, other, fresh=True)
    assert later.fire_candidates(rules, cat, other) == want and 0 < sum(asked) < len(other)


def test_a_damaged_or_foreign_store_is_ignored(cat, rules, store, monkeypatch):
    cands = build_candidates(cat, build_request(cat, model="8b", budget=5000, workload="lora"))
    first = engine_mod.RuleEngine()
    fired = first.fire_candidates(rules, cat, cands)
    first._persist()
    (entry,) = store.glob("*.verdicts")
    factors = {f: {r.id for r in rs} for f, rs in rules.by_factor().items()}
    known = verdictstore.load(rules.digest, factors)
    assert known and sum(map(len, known.values())) > 0
    # A class answered with a rule this rule set does not have: not this rule set's answers.
    factor = next(f for f, k in known.items() if k)
    forged = {**known, factor: {cl: ("no-such/rule",) for cl in known[factor]}}
    cachedir.write_entry(store, entry.name, marshal.dumps(forged))
    assert verdictstore.load(rules.digest, factors) == {}
    for junk in (b"", b"\x00not marshal", marshal.dumps([1, 2]), marshal.dumps({"nope": {}})):
        cachedir.write_entry(store, entry.name, junk)
        assert verdictstore.load(rules.digest, factors) == {}
        later = engine_mod.RuleEngine()
        assert later.fire_candidates(rules, cat, cands) == fired
    # A rule set with another digest has its own entry.
    assert verdictstore.entry_name(rules.digest) != verdictstore.entry_name(rules.digest + "x")


def test_no_cache_stores_nothing(cat, rules, store, monkeypatch):
    monkeypatch.setenv("GPU_EXPERT_NO_CACHE", "1")
    eng = engine_mod.RuleEngine()
    eng.fire_candidates(rules, cat, build_candidates(cat, build_request(cat, model="13b", budget=20000)))
    eng._persist()
    assert not store.exists()


def test_at_most_the_limit_of_classes_per_factor_is_written(rules, store, monkeypatch):
    monkeypatch.setattr(verdictstore, "STORE_LIMIT", 3)
    factor = next(iter(rules.by_factor()))
    verdictstore.save(rules.digest, {factor: {(i,): () for i in range(10)}})
    got = verdictstore.load(rules.digest, {f: {r.id for r in rs} for f, rs in rules.by_factor().items()})
    assert list(got[factor]) == [(7,), (8,), (9,)]  # the most recently learnt


def test_a_second_process_does_not_load_durable_rules(tmp_path):
    code = ("import sys; from expert.store import load_all; from expert.request import build_request; "
            "from expert.decide.advice import advise; cat, rules = load_all(); "
            "a = advise(cat, rules, build_request(cat, model='13b', budget=20000)); "
            "print(a.outcome.pick.candidate.label, 'durable' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(ROOT)}
    env.pop("GPU_EXPERT_NO_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][-1] == "True" and runs[1][-1] == "False" and runs[0][:-1] == runs[1][:-1]
