"""Meta-tests on the rule files, and rule-loading errors that point at file, line and rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expert.core.errors import RuleError
from expert.rulelang import ACTIONS, FACTORS, check_sources, load_rules
from expert.rulelang.load import check_basis


def test_at_least_35_rules_covering_every_factor_and_action(rules):
    assert len(rules.rules) >= 35
    assert {r.factor for r in rules.rules} == set(FACTORS)
    assert {r.action.kind for r in rules.rules} == set(ACTIONS)


def test_every_rule_has_id_factor_title_because_sources_and_bases(cat, rules):
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids))
    for r in rules.rules:
        assert re.fullmatch(r"[a-z_]+/[a-z0-9-]+", r.id), r.id
        assert r.id.split("/")[0] == r.factor
        assert r.title.strip() and r.because.strip() and r.sources, r.id
        for sid in r.sources:
            assert cat.sources[sid].address().startswith("https://"), (r.id, sid)
        assert check_basis(r) is None, r.id
    assert check_sources(rules, cat.sources) == []


def test_every_because_renders_in_the_sandbox(rules):
    problems: list[str] = []
    load_rules(problems=problems, probe=True)
    assert problems == []


def _write(rules_copy: Path, text: str) -> None:
    (rules_copy / "zz_test.yaml").write_text(text)


BASE = """factor: precision
rules:
  - id: precision/probe
    title: A test rule
    when: {WHEN}
    then: {THEN}
    because: "{BECAUSE}"
    sources: [VLLM_ENGINE_ARGS]
"""


def _rule(when="{precision.id: fp8}", then="reject", because="x {{ gpu.id }}") -> str:
    return BASE.replace("{WHEN}", when).replace("{THEN}", then).replace("{BECAUSE}", because)


@pytest.mark.parametrize("when, then, because, message", [
    ("{gpu.teraflops: 3}", "reject", "x", r"unknown fact field 'gpu.teraflops'"),
    ("{precision.bits: {approx: 3}}", "reject", "x", r"unknown operator 'approx'"),
    ("{precision.bits: {gt: fast}}", "reject", "x", r"expected a float value"),
    ("{precision.id: {gt: fp8}}", "reject", "x", r"ordering needs a numeric field"),
    ("{precision.id: fp8, gpu.fp8: true}", "reject", "x", r"exactly one key"),
    ("{precision.id: fp8}", "explode", "x", r"is not an action"),
    ("{precision.id: fp8}", "{penalize: 2}", "x", r"weight must be a number between 0 and 1"),
    ("{precision.id: fp8}", "reject", "{{ gpu.__class__ }}", r"unsafe template"),
    ("{precision.id: fp8}", "reject", "{{ gpu.nonexistent }}", r"refers to something the facts do not have"),
    ("{precision.id: fp8}", "reject", "{{ gpu.id ", r"template syntax error"),
])
def test_bad_rules_are_rejected_naming_file_line_and_rule(rules_copy, when, then, because, message):
    _write(rules_copy, _rule(when, then, because))
    with pytest.raises(RuleError) as exc:
        load_rules(rules_copy, probe=True)
    msg = str(exc.value)
    assert re.match(r"rules/zz_test\.yaml:\d+: rule 'precision/probe': ", msg), msg
    assert re.search(message, msg), msg


@pytest.mark.parametrize("then, points_to, message", [
    ("warn", "{count: fit.min_count}", r"points_to: only a `suggest` rule"),
    ("suggest", "{gpu: fit.min_count}", r"points_to\.gpu: not a candidate field"),
    ("suggest", "{count: fit.fewest}", r"points_to\.count: 'fit\.fewest' is not a fact field"),
])
def test_a_suggestion_points_only_at_candidate_fields_read_from_facts(rules_copy, then, points_to, message):
    _write(rules_copy, _rule(then=then) + f"    points_to: {points_to}\n")
    with pytest.raises(RuleError, match=message):
        load_rules(rules_copy, probe=True)


def test_unsafe_template_is_rejected_on_every_load_not_only_in_check(rules_copy):
    _write(rules_copy, _rule(because="{{ gpu.__class__.__mro__ }}"))
    with pytest.raises(RuleError, match="unsafe template"):
        load_rules(rules_copy)


def test_duplicate_ids_are_rejected(rules_copy):
    _write(rules_copy, _rule().replace("precision/probe", "precision/bf16-needs-ampere"))
    with pytest.raises(RuleError, match=r"duplicate id \(first defined in rules/precision\.yaml:\d+\)"):
        load_rules(rules_copy)


def test_rule_id_must_match_the_file_factor(rules_copy):
    _write(rules_copy, _rule().replace("precision/probe", "ecosystem/probe"))
    with pytest.raises(RuleError, match=r"id must start with 'precision/'"):
        load_rules(rules_copy)


def test_missing_sources_are_rejected(rules_copy):
    _write(rules_copy, _rule().replace("    sources: [VLLM_ENGINE_ARGS]\n", ""))
    with pytest.raises(RuleError, match=r"sources: required field missing"):
        load_rules(rules_copy)
    _write(rules_copy, _rule().replace("[VLLM_ENGINE_ARGS]", "[]"))
    with pytest.raises(RuleError, match=r"zz_test.yaml:\d+: rule 'precision/probe': sources: must list"):
        load_rules(rules_copy)


def test_unknown_source_ids_and_sources_without_address_are_reported(cat, rules_copy):
    _write(rules_copy, _rule().replace("[VLLM_ENGINE_ARGS]", "[NO_SUCH_DOC]"))
    problems = check_sources(load_rules(rules_copy), cat.sources)
    assert any("zz_test.yaml" in p and "unknown source id 'NO_SUCH_DOC'" in p for p in problems)
    no_address = next(sid for sid, s in cat.sources.items() if not s.address())
    _write(rules_copy, _rule().replace("[VLLM_ENGINE_ARGS]", f"[{no_address}]"))
    assert any("has no address" in p for p in check_sources(load_rules(rules_copy), cat.sources))


@pytest.mark.parametrize("when, then, basis, message", [
    ("{precision.bits: {lt: 8}}", "reject", None, r"basis: missing for precision.bits"),
    ("{precision.id: fp8}", "{penalize: 0.2}", None, r"basis: missing for weight"),
    ("{precision.bits: {lt: 8}}", "reject", {"precision.bits": "because I said so"}, r"must start with one of"),
    ("{precision.id: fp8}", "reject", {"precision.id": "assumption: x"}, r"precision.id is not a threshold"),
    ("{count: {in: [2, 4]}}", "reject", None, r"basis: missing for count"),
])
def test_every_threshold_and_weight_needs_a_basis(rules_copy, when, then, basis, message):
    text = _rule(when=when, then=then)
    if basis:
        text += "    basis:\n" + "".join(f'      {k}: "{v}"\n' for k, v in basis.items())
    _write(rules_copy, text)
    with pytest.raises(RuleError, match=message):
        load_rules(rules_copy)


def test_a_rule_with_its_bases_loads(rules_copy):
    text = _rule(when="{precision.bits: {lt: 8}}", then="{penalize: 0.2}") + (
        '    basis:\n      precision.bits: "documented: 8-bit formats [VLLM_ENGINE_ARGS]"\n'
        '      weight: "assumption: a 20 % price difference"\n')
    _write(rules_copy, text)
    r = load_rules(rules_copy).by_id["precision/probe"]
    assert set(r.basis) == {"precision.bits", "weight"}


def test_malformed_yaml_names_the_rule_file_and_line(rules_copy):
    _write(rules_copy, "factor: precision\nrules:\n  - id: [unclosed\n")
    with pytest.raises(Exception, match=r"rules/zz_test\.yaml:\d+: malformed YAML"):
        load_rules(rules_copy)


@pytest.mark.parametrize("threshold", ["1.0e-06", "5.0e+15"])
def test_thresholds_the_engine_cannot_compare_safely_are_load_errors(rules_copy, threshold):
    _write(rules_copy, _rule(when="{memory.headroom_gib: {gt: " + threshold + "}}"))
    with pytest.raises(RuleError, match=r"rule 'precision/probe': .*outside what the engine compares safely"):
        load_rules(rules_copy)
