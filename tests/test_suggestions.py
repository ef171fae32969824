"""Suggestions are advice a buyer can follow: none leads to a configuration the expert itself rejected."""

from __future__ import annotations

import pytest

from expert.decide.advice import advise
from expert.request import build_request
from expert.rulelang import get_path


def _hard_rejected(outcome) -> set[tuple]:
    return {(r.candidate.gpu.id, r.candidate.count, r.candidate.precision.id) for r in outcome.rejected
            if any(v.action == "reject" and v.rule.scope != "budget" for v in r.verdicts)}


@pytest.mark.parametrize("kw", [
    {"model": "70b", "budget": 400_000, "workload": "finetune", "tokens": 1e9},
    {"model": "13b", "budget": 20_000},
    {"model": "13b", "budget": 5_000},
    {"model": "405b", "budget": 5_000},
])
def test_no_suggestion_leads_to_a_configuration_rejected_for_more_than_money(cat, rules, kw):
    adv = advise(cat, rules, build_request(cat, **kw))
    shown = set(adv.suggestions())
    dead = _hard_rejected(adv.outcome)
    for r in adv.outcome.ranked + adv.outcome.rejected:
        c = r.candidate
        for v in r.verdicts:
            pt = v.rule.points_to
            if v.action != "suggest" or not pt or v.text not in shown:
                continue
            target = (c.gpu.id, get_path(v.fact, pt.get("count", "count")),
                      get_path(v.fact, pt["precision"]) if "precision" in pt else c.precision.id)
            assert target not in dead, (v.text, target)


def test_a_rule_wide_suggestion_is_given_once(cat, rules):
    adv = advise(cat, rules, build_request(cat, model="70b", budget=400_000, workload="finetune", tokens=1e9))
    lora = [s for s in adv.suggestions() if s.startswith("full fine-tuning")]
    assert len(lora) == 1, lora


def test_the_p40_pair_is_no_longer_offered_for_a_70b_full_fine_tune(cat, rules):
    adv = advise(cat, rules, build_request(cat, model="70b", budget=400_000, workload="finetune", tokens=1e9))
    assert not [s for s in adv.suggestions() if "tesla-p40" in s]


def test_renting_is_not_suggested_for_a_configuration_the_rules_rule_out(cat, rules):
    # The GeForce driver licence rules an RTX 3090 out of a datacenter: renting one there is no advice either.
    adv = advise(cat, rules, build_request(cat, model="13b", budget=20_000))
    assert not [s for s in adv.suggestions() if s.startswith("renting") and "rtx-3090" in s]


def test_nearest_misses_are_near_the_deadline_as_well_as_the_budget(cat, rules):
    adv = advise(cat, rules, build_request(cat, model="llama-3.1-405b", budget=50_000_000, workload="training",
                                           tokens=15e12, deadline=180))
    assert adv.outcome.nearest_misses
    for r in adv.outcome.nearest_misses:
        assert r.candidate.train_days <= 2 * 180, (r.candidate.label, r.candidate.train_days)
