"""The rule fact is built in one place from the typed candidate, and says what the estimator costed."""

from __future__ import annotations

import pytest

from expert.candidates import build_candidates
from expert.request import build_request
from expert.rulelang.facts import candidate_fact
from expert.rulelang.vocabulary import FACT_FIELDS, get_path


def _leaves(fact, prefix=""):
    for k, v in fact.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _leaves(v, path + ".")
        else:
            yield path, v


@pytest.mark.parametrize("kw", [
    dict(model="13b", budget=20000),
    dict(model="70b", budget=500000, workload="finetune"),
    dict(model="8b", budget=5000, workload="dev"),
])
def test_the_fact_has_exactly_the_vocabulary_with_its_types(cat, kw):
    req = build_request(cat, **kw)
    for c in build_candidates(cat, req)[:60]:
        leaves = dict(_leaves(candidate_fact(cat, c)))
        assert set(leaves) == set(FACT_FIELDS), set(leaves) ^ set(FACT_FIELDS)
        for path, value in leaves.items():
            want = FACT_FIELDS[path]
            assert isinstance(value, want) and not (want in (int, float) and isinstance(value, bool)), (path, value)


def test_rules_read_the_link_the_estimator_costed(cat):
    # 4 x A100 PCIe was 'pcie-p2p' for the rules and a 'network' all-reduce for the estimator.
    req = build_request(cat, model="13b", budget=20000)
    cands = build_candidates(cat, req)
    assert any(c.count == 4 and c.gpu.id == "a100-80gb-pcie" for c in cands)
    for c in cands:
        fact = candidate_fact(cat, c)
        assert get_path(fact, "perf.link") == c.estimate.link.kind
    four = next(c for c in cands if c.count == 4 and c.gpu.id == "a100-80gb-pcie")
    assert four.estimate.link.kind == "pcie-p2p"


def test_the_price_is_computed_once_and_the_view_shows_the_same(cat, rules):
    from expert.decide.advice import advise

    result = advise(cat, rules, build_request(cat, model="13b", budget=20000))
    pick = result.outcome.pick.candidate
    doc = result.to_dict()
    e = pick.economics
    assert doc["recommendation"]["capex"] == round(e.capex, 2) == round(e.gpu_capex + e.platform_capex, 2)
    assert doc["recommendation"]["price_each"] == round(e.price_each, 2)
    assert get_path(candidate_fact(cat, pick), "cost.capex") == e.capex
