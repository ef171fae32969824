"""Invariants over random valid requests (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expert.candidates import build_candidates
from expert.decide.advice import advise
from expert.decide.ranking import rank
from expert.render import render
from expert.request import build_request
from expert.rulelang.engine import fire
from expert.rulelang.facts import candidate_fact
from expert.store import load_all

CAT, RULES = load_all()
MODELS = sorted(CAT.models)
WORKLOADS = ["dev", "inference", "lora", "qlora", "finetune", "training"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def requests(draw):
    model = draw(st.sampled_from(MODELS))
    workload = draw(st.sampled_from(WORKLOADS))
    max_ctx = min(CAT.models[model].max_context, 32768)
    return dict(
        model=model,
        workload=workload,
        budget=draw(st.floats(min_value=500, max_value=2_000_000, allow_nan=False)),
        context=draw(st.integers(min_value=128, max_value=max_ctx)),
        batch=draw(st.integers(min_value=1, max_value=32)),
        currency=draw(st.sampled_from(["USD", "CNY", "EUR"])),
        region=draw(st.sampled_from(["global", "china", "us", "eu"])),
        deployment=draw(st.sampled_from([None, "workstation", "datacenter"])),
        precision=draw(st.sampled_from(["auto", "auto", "bf16", "fp8", "q4_k_m", "int4", "nf4"])),
    )


@SETTINGS
@given(requests())
def test_the_pick_fits_and_is_within_budget_or_nothing_is_claimed(kw):
    result = advise(CAT, RULES, build_request(CAT, **kw))
    doc = result.to_dict()
    pick = result.outcome.pick
    if pick is None:
        assert doc["nothing_fits_budget"] is True and doc["recommendation"] is None
    else:
        assert pick.candidate.estimate.fits
        assert pick.candidate.capex <= result.request.budget + 1e-6
        assert not pick.rejected_by


@SETTINGS
@given(requests())
def test_identical_input_gives_byte_identical_output(kw):
    a = render(advise(CAT, RULES, build_request(CAT, **kw)).to_dict(), "json")
    b = render(advise(CAT, RULES, build_request(CAT, **kw)).to_dict(), "json")
    assert a == b


@SETTINGS
@given(requests(), st.floats(min_value=1.01, max_value=50))
def test_a_larger_budget_never_yields_a_worse_pick(kw, factor):
    small = advise(CAT, RULES, build_request(CAT, **kw)).outcome.pick
    big = advise(CAT, RULES, build_request(CAT, **{**kw, "budget": kw["budget"] * factor})).outcome.pick
    if small is not None:
        assert big is not None
        assert big.raw_score >= small.raw_score * (1 - 1e-9)


@SETTINGS
@given(requests(), st.sampled_from(sorted(CAT.gpus)))
def test_adding_a_gpu_never_removes_a_feasible_pick(kw, extra):
    req = build_request(CAT, **kw)
    without = [g for g in CAT.gpus.values() if g.id != extra]

    def outcome(gpus):
        cands = build_candidates(CAT, req, gpus)
        facts = [candidate_fact(CAT, c) for c in cands]
        return rank(RULES, cands, facts, fire(RULES, facts), req.workload)

    before, after = outcome(without), outcome(list(CAT.gpus.values()))
    if before.pick is not None:
        assert after.pick is not None
        assert after.pick.raw_score >= before.pick.raw_score * (1 - 1e-9)


@SETTINGS
@given(requests(), st.sampled_from([None, "100M", "2T", "15T"]))
def test_engine_verdicts_equal_the_python_evaluation_of_every_rule(kw, tokens):
    # Differential test: durable_rules against our own evaluator, over random requests (this is how the
    # exponent-notation hazard showed up: whole rulesets silently lost their facts).
    from expert.rulelang.conditions import evaluate

    req = build_request(CAT, **{**kw, "tokens": tokens, "budget": kw["budget"] * 1000})
    facts = [candidate_fact(CAT, c) for c in build_candidates(CAT, req)]
    got = {(f.rule_id, f.fact_id) for f in fire(RULES, facts)}
    want = {(r.id, f["id"]) for r in RULES.rules for f in facts if evaluate(r.when, f)}
    assert got == want
