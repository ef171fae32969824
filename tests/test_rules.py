"""Meta-tests on the rule files, and rule-loading errors that point at file, line and rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expert.core.errors import RuleError
from expert.rulelang import ACTIONS, FACTORS, load_rules


def test_at_least_35_rules_covering_every_factor_and_action(rules):
    assert len(rules.rules) >= 35
    assert {r.factor for r in rules.rules} == set(FACTORS)
    assert {r.action.kind for r in rules.rules} == set(ACTIONS)


def test_every_rule_has_id_factor_title_because_and_source(rules):
    ids = [r.id for r in rules.rules]
    assert len(ids) == len(set(ids))
    for r in rules.rules:
        assert re.fullmatch(r"[a-z_]+/[a-z0-9-]+", r.id), r.id
        assert r.id.split("/")[0] == r.factor
        assert r.title.strip() and r.because.strip() and len(r.source.strip()) > 10, r.id


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
    source: "a datasheet"
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


def test_missing_source_is_rejected(rules_copy):
    _write(rules_copy, _rule().replace('    source: "a datasheet"\n', ""))
    with pytest.raises(RuleError, match=r"source: required field missing"):
        load_rules(rules_copy)


def test_malformed_yaml_names_the_rule_file_and_line(rules_copy):
    _write(rules_copy, "factor: precision\nrules:\n  - id: [unclosed\n")
    with pytest.raises(Exception, match=r"rules/zz_test\.yaml:\d+: malformed YAML"):
        load_rules(rules_copy)


@pytest.mark.parametrize("threshold", ["1.0e-06", "5.0e+15"])
def test_thresholds_the_engine_cannot_compare_safely_are_load_errors(rules_copy, threshold):
    _write(rules_copy, _rule(when="{memory.headroom_gib: {gt: " + threshold + "}}"))
    with pytest.raises(RuleError, match=r"rule 'precision/probe': .*outside what the engine compares safely"):
        load_rules(rules_copy)
