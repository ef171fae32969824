"""The golden scenario corpus: every scenario gets the outcome an expert expects; every rule fires."""

from __future__ import annotations

import pytest

from expert.governance.scenarios import check_scenario, coverage, load_scenarios, run_scenario

SCENARIOS = load_scenarios()


def test_corpus_spans_the_product():
    reqs = [s.request for s in SCENARIOS]
    assert len(SCENARIOS) >= 30
    assert {r.get("workload", "inference") for r in reqs} == {"dev", "inference", "lora", "qlora", "finetune",
                                                               "training"}
    budgets = [float(r["budget"]) for r in reqs if r.get("currency", "USD") == "USD"]
    assert min(budgets) <= 1000 and max(budgets) >= 500000
    assert {r.get("currency", "USD") for r in reqs} >= {"USD", "CNY"}
    assert {r.get("region", "global") for r in reqs} >= {"global", "china"}


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(cat, rules, sc):
    problems = check_scenario(sc, run_scenario(cat, rules, sc))
    assert not problems, "\n".join(problems)


def test_every_rule_fires_in_at_least_one_scenario(cat, rules):
    cov = coverage(cat, rules, SCENARIOS)
    dead = [rid for rid, hits in cov.items() if not hits]
    assert dead == []
