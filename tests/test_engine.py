"""durable_rules' rules of engagement (docs in shared/durable-rules.md), one test per point, and the
compilation of every condition operator checked against our own Python evaluation."""

from __future__ import annotations

import json
import threading

import pytest

from expert.core.yamlio import load_yaml_text
from expert.rulelang import RuleSet, engine, sample_fact
from expert.rulelang.conditions import compile_condition, evaluate
from expert.rulelang.engine import EngineError, fire
from expert.rulelang.load import parse_rule_file


def ruleset(yaml_text: str) -> RuleSet:
    doc = load_yaml_text(yaml_text, "rules/test.yaml")
    rules = parse_rule_file(doc, "rules/test.yaml", probe=True)
    return RuleSet(rules, digest="test-" + str(abs(hash(yaml_text))))


def fact(i: int, **over) -> dict:
    f = sample_fact()
    f["id"] = i
    f["kind"] = "candidate"
    for path, value in over.items():
        cur = f
        parts = path.split("__")
        for p in parts[:-1]:
            cur = cur[p]
        cur[parts[-1]] = value
    return f


OPERATORS = """
factor: precision
rules:
  - {id: precision/eq, title: t, when: {precision.id: fp8}, then: reject, because: b, sources: [S]}
  - {id: precision/ne, title: t, when: {precision.id: {ne: fp8}}, then: warn, because: b, sources: [S]}
  - {id: precision/gt, title: t, when: {precision.bits: {gt: 8.0}}, then: warn, because: b, sources: [S],
     basis: {precision.bits: "assumption: test threshold"}}
  - {id: precision/ge, title: t, when: {precision.bits: {ge: 8.0}}, then: warn, because: b, sources: [S],
     basis: {precision.bits: "assumption: test threshold"}}
  - {id: precision/lt, title: t, when: {precision.bits: {lt: 8.0}}, then: warn, because: b, sources: [S],
     basis: {precision.bits: "assumption: test threshold"}}
  - {id: precision/le, title: t, when: {precision.bits: {le: 8.0}}, then: warn, because: b, sources: [S],
     basis: {precision.bits: "assumption: test threshold"}}
  - {id: precision/in, title: t, when: {precision.id: {in: [int4, nf4]}}, then: warn, because: b, sources: [S]}
  - {id: precision/bool, title: t, when: {gpu.fp8: false}, then: warn, because: b, sources: [S]}
  - id: precision/nested
    title: t
    when: {all: [{gpu.fp8: true}, {any: [{precision.id: int4}, {precision.bits: {ge: 16.0}}]}]}
    then: {prefer: 0.1}
    because: b
    sources: [S]
    basis: {precision.bits: "assumption: test threshold", weight: "assumption: test weight"}
  - id: precision/field-ref
    title: t
    when: {memory.per_gpu_gib: {gt: {field: memory.available_gib}}}
    then: {penalize: 0.2}
    because: b
    sources: [S]
    basis: {weight: "assumption: test weight"}
"""

FACTS = [
    fact(1, precision__id="fp8", precision__bits=8.0, gpu__fp8=True, memory__per_gpu_gib=10.0,
         memory__available_gib=24.0),
    fact(2, precision__id="int4", precision__bits=4.156, gpu__fp8=True, memory__per_gpu_gib=30.0,
         memory__available_gib=24.0),
    fact(3, precision__id="bf16", precision__bits=16.0, gpu__fp8=False, memory__per_gpu_gib=24.0,
         memory__available_gib=24.0),
    fact(4, precision__id="nf4", precision__bits=4.127, gpu__fp8=True, memory__per_gpu_gib=1.0,
         memory__available_gib=80.0),
    fact(5, precision__id="bf16", precision__bits=16.0, gpu__fp8=True, memory__per_gpu_gib=81.0,
         memory__available_gib=80.0),
]


@pytest.mark.parametrize("rule_id", [f"precision/{k}" for k in
                                     ("eq", "ne", "gt", "ge", "lt", "le", "in", "bool", "nested", "field-ref")])
def test_each_operator_compiles_to_what_python_evaluates(rule_id):
    rs = ruleset(OPERATORS)
    engine_hits = {f.fact_id for f in fire(rs, FACTS) if f.rule_id == rule_id}
    rule = rs.by_id[rule_id]
    python_hits = {f["id"] for f in FACTS if evaluate(rule.when, f)}
    assert engine_hits == python_hits
    assert python_hits and python_hits != {f["id"] for f in FACTS} or rule_id in ("precision/ne",)


def test_compiled_objects_have_one_key_and_no_negation():
    # Point 11: a condition object with two keys silently drops one; point 6: no $not in phase one.
    def walk(node):
        if isinstance(node, dict):
            assert len(node) == 1, node
            assert "$not" not in node
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    rs = ruleset(OPERATORS)
    for r in rs.rules:
        walk(compile_condition(r.when))


def test_real_rules_compile_to_single_key_objects(rules):
    for r in rules.rules:
        text = json.dumps(r.compiled())
        assert "$not" not in text
        for node in r.compiled()["$and"]:
            assert len(node) == 1


def test_no_background_threads_are_started():
    # Point 2: engine.Host() starts a dispatcher thread; our host overrides _run().
    before = threading.active_count()
    fire(ruleset(OPERATORS), FACTS)
    fire(ruleset(OPERATORS), FACTS)
    assert threading.active_count() == before


def test_facts_no_rule_matches_are_handled_by_the_sink():
    # Point 3: an unmatched fact would raise MessageNotHandledException and skip the others' actions.
    rs = ruleset("""
factor: precision
rules:
  - {id: precision/only-fp8, title: t, when: {precision.id: fp8}, then: reject, because: b, sources: [S]}
""")
    got = fire(rs, FACTS)
    assert [(f.rule_id, f.fact_id) for f in got] == [("precision/only-fp8", 1)]


def test_a_request_where_nothing_matches_still_deletes_its_state():
    # Point 4: delete_state on a sid that never fired aborts; the sink guarantees a firing.
    rs = ruleset("""
factor: precision
rules:
  - {id: precision/never, title: t, when: {precision.id: none-such}, then: reject, because: b, sources: [S]}
""")
    assert fire(rs, FACTS) == []


def test_rulesets_are_registered_once_per_process():
    # Point 5: C rulesets are never freed, so registering per request leaks.
    rs = ruleset(OPERATORS)
    fire(rs, FACTS)
    n = len(engine.default_engine()._compiled)
    for _ in range(3):
        fire(rs, FACTS)
    assert len(engine.default_engine()._compiled) == n


def test_more_than_1024_requests_in_one_process_stay_correct():
    # Point 5: the 1,025th live sid corrupts the ruleset; every sid is deleted after its request.
    rs = ruleset(OPERATORS)
    first = fire(rs, FACTS)
    for _ in range(1100):
        fire(rs, FACTS[:2])
    assert fire(rs, FACTS) == first


def test_non_finite_numbers_are_refused_before_assert():
    # Point 7: NaN matches nothing silently, Infinity crashes a batch.
    bad = fact(9, memory__per_gpu_gib=float("nan"))
    with pytest.raises(EngineError, match="not finite"):
        fire(ruleset(OPERATORS), [bad])


def test_fact_ids_must_be_unique():
    with pytest.raises(EngineError, match="unique ids"):
        fire(ruleset(OPERATORS), [FACTS[0], FACTS[0]])


def test_registering_a_ruleset_consumes_nothing_of_ours():
    # Point 10: register_rulesets deletes `run` from what it is given. The same Rule objects registered
    # again under another digest must still carry their actions and fire identically.
    rs = ruleset(OPERATORS)
    before = [r.compiled() for r in rs.rules]
    first = fire(rs, FACTS)
    again = RuleSet(rs.rules, rs.digest + "-again")
    assert fire(again, FACTS) == first and first
    assert [r.compiled() for r in rs.rules] == before
    passed = []
    eng = engine.RuleEngine()
    real = eng.host.register_rulesets
    eng.host.register_rulesets = lambda d: (passed.append(d), real(d))[1]
    eng.compile(rs)
    assert not passed  # registered when first asserted into, not before
    assert eng.fire(rs, FACTS) == first
    assert passed and all("run" not in rule for d in passed for rs_def in d.values() for rule in rs_def.values())


def test_each_factor_stays_under_48_condition_patterns(rules):
    # Point 9: over 64 simultaneously matching alpha nodes raise error 303.
    from expert.rulelang.conditions import leaves as _leaves

    for factor, rs in rules.by_factor().items():
        distinct = {json.dumps(leaf, sort_keys=True) for r in rs for leaf in _leaves(r.compiled())}
        assert len(distinct) <= 48, factor


def test_a_factor_with_too_many_patterns_is_a_load_error(rules_copy):
    from expert.core.errors import RuleError
    from expert.rulelang import load_rules

    body = "factor: workload\nrules:\n" + "".join(
        f"  - {{id: workload/r{i}, title: t, when: {{req.budget: {{gt: {i}.0}}}}, then: warn, because: b, "
        f"sources: [S], basis: {{req.budget: 'assumption: test'}}}}\n" for i in range(60))
    (rules_copy / "workload.yaml").write_text(body)
    with pytest.raises(RuleError, match=r"rules/workload\.yaml:1: .*distinct condition patterns"):
        load_rules(rules_copy)


def test_firing_order_is_stable_and_independent_of_fact_order():
    rs = ruleset(OPERATORS)
    a = fire(rs, FACTS)
    b = fire(rs, list(reversed(FACTS)))
    assert a == b


def test_engine_agrees_with_python_on_the_real_corpus(cat, rules):
    # Differential test: every real rule, every candidate of a broad request.
    from expert.candidates import build_candidates
    from expert.request import build_request
    from expert.rulelang.facts import candidate_fact

    req = build_request(cat, model="70b", budget=60000, workload="inference", region="china")
    facts = [candidate_fact(cat, c) for c in build_candidates(cat, req)]
    got = {(f.rule_id, f.fact_id) for f in fire(rules, facts)}
    want = {(r.id, f["id"]) for r in rules.rules for f in facts if evaluate(r.when, f)}
    assert got == want


@pytest.mark.parametrize("value", [3e-07, 5e-05, 1e-12, 1e16, 2e20, -1e16])
def test_numbers_durable_would_misread_are_clamped_not_lost(value):
    # Found here: durable's JSON parser drops facts or segfaults on "3e-07" / "1e+16" (exponent, no dot).
    rs = ruleset(OPERATORS)
    f = fact(7, precision__id="fp8", precision__bits=8.0, gpu__fp8=True, memory__per_gpu_gib=value,
             memory__available_gib=24.0)
    got = {r.rule_id for r in fire(rs, [f])}
    assert "precision/eq" in got  # the fact was seen at all
    assert ("precision/field-ref" in got) == (value > 24.0)


def test_engine_number_keeps_comparisons_with_safe_thresholds():
    from expert.rulelang.engine import engine_number

    for v in (3e-07, 5e-05, 1e16, 0.0, 0.5, 123.0):
        for t in (0.0, 1e-3, 0.5, 1e14):
            assert (engine_number(v) > t) == (v > t)


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-9, -1e-9, 5e-5, 8.0, 8.000001, 7.99, 1e20, -1e20, 10**16, -10**16,
                                   3, None])
def test_the_inline_class_function_gives_the_flat_class_key(value):
    # The generated class function writes the number handling out inline; it must put every number (clamped tiny and
    # huge ones, -0.0, ints, None) in the class the flat projection's _class_key gives.
    rs = ruleset(OPERATORS)
    compiled = engine.compile_ruleset(rs)
    f = fact(7, precision__bits=value, memory__per_gpu_gib=value)
    for factor, keys in compiled.keys.items():
        flat = engine._flatten(f, compiled.lookups)
        want = engine._class_key(tuple(flat[k] for k in keys), compiled.classes[factor],
                                     compiled.pairs[factor], compiled.strings[factor])
        assert compiled.class_of[factor](f) == want


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_the_inline_class_function_refuses_non_finite_numbers(value):
    compiled = engine.compile_ruleset(ruleset(OPERATORS))
    with pytest.raises(engine._NotFinite):
        for factor in compiled.keys:
            compiled.class_of[factor](fact(8, precision__bits=value))


def test_numbers_compared_with_each_other_share_a_class_by_their_order_only():
    compiled = engine.compile_ruleset(ruleset(OPERATORS))
    cls = compiled.class_of["precision"]
    below = [fact(1, memory__per_gpu_gib=10.0, memory__available_gib=24.0),
             fact(2, memory__per_gpu_gib=3.5, memory__available_gib=70.0)]
    above = fact(3, memory__per_gpu_gib=30.0, memory__available_gib=24.0)
    equal = fact(4, memory__per_gpu_gib=24.0, memory__available_gib=24.0)
    assert cls(below[0]) == cls(below[1])
    assert len({cls(below[0]), cls(above), cls(equal)}) == 3
    # ...and the class path gives each fact what the fresh path and the Python evaluation give it
    facts = [*below, above, equal]
    rs = ruleset(OPERATORS)
    fast = {(x.rule_id, x.fact_id) for x in fire(rs, facts)}
    assert fast == {(x.rule_id, x.fact_id) for x in fire(rs, facts, fresh=True)}
    rule = next(r for r in rs.rules if r.id == "precision/field-ref")
    assert {x.fact_id for x in fire(rs, facts) if x.rule_id == rule.id} == {
        f["id"] for f in facts if evaluate(rule.when, f)} == {3}


def test_strings_tested_only_against_literals_count_as_the_literal_they_equal_or_none():
    compiled = engine.compile_ruleset(ruleset(OPERATORS))
    cls = compiled.class_of["precision"]
    # precision.id is tested against fp8, int4 and nf4: q4_k_m and bf16 equal none of them, one class
    assert cls(fact(1, precision__id="q4_k_m")) == cls(fact(2, precision__id="bf16"))
    assert len({cls(fact(3, precision__id=v)) for v in ("fp8", "int4", "nf4", "bf16")}) == 4
    assert cls(fact(5, precision__id=None)) != cls(fact(6, precision__id="bf16"))  # None satisfies no test
    rs = ruleset(OPERATORS)
    facts = [fact(i, precision__id=v) for i, v in enumerate(("q4_k_m", "bf16", "fp8", "int4", "nf4"), 1)]
    assert fire(rs, facts) == fire(rs, facts, fresh=True)
