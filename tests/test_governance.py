"""Rule governance: list/show/check/coverage, and `expert audit` on a temporary git repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from expert.governance.commands import check_problems

from .conftest import ROOT, run_cli


def test_rules_list_and_factor_filter():
    r = run_cli("rules", "list")
    assert r.code == 0 and "precision/fp8-needs-ada-hopper" in r.out
    f = run_cli("rules", "list", "--factor", "scalability")
    assert f.code == 0 and all(line.startswith("scalability/") for line in f.out.splitlines())
    bad = run_cli("rules", "list", "--factor", "colour")
    assert bad.code == 2 and "unknown factor 'colour'" in bad.err


def test_rules_show_prints_the_rule_its_source_and_scenarios():
    r = run_cli("rules", "show", "ecosystem/export-restricted-china")
    assert r.code == 0
    assert "rules/ecosystem.yaml:" in r.out and "sources:" in r.out and "BIS_" in r.out
    assert re.search(r"fires in \d+ scenario", r.out)
    unknown = run_cli("rules", "show", "precision/fp8-needs-hopper")
    assert unknown.code == 2 and "closest: precision/fp8-needs-ada-hopper" in unknown.err


def test_rules_coverage_lists_every_rule():
    r = run_cli("rules", "coverage")
    assert r.code == 0 and "rules fire in the" in r.out and "dead:" not in r.out


def test_rules_check_passes_on_the_project():
    assert check_problems() == []


def test_rules_check_reports_all_problems_with_file_line_and_id(rules_copy, tmp_path):
    # A few scenarios are enough to show each kind of problem (the whole corpus is run by test_rules_check_passes).
    corpus = tmp_path / "scenarios"
    corpus.mkdir()
    for name in ("inference-13b-20k-usd", "inference-8b-datacenter-3k-usd-no-geforce", "dev-8b-workstation-3k-usd"):
        shutil.copy(ROOT / "tests" / "scenarios" / f"{name}.yaml", corpus)
    text = (rules_copy / "precision.yaml").read_text()
    text += """
  - id: precision/never-fires
    title: Dead
    when: {model.params_b: {gt: 100000.0}}
    then: warn
    because: "never"
    sources: [VLLM_ENGINE_ARGS]
    basis: {model.params_b: "assumption: larger than any model"}

  - id: precision/prefers-what-is-rejected
    title: Contradiction
    when:
      all:
        - precision.needs_bf16: true
        - gpu.bf16: false
    then: {prefer: 0.1}
    because: "contradiction"
    sources: [VLLM_ENGINE_ARGS]
    basis: {weight: "assumption: test"}

  - id: precision/unknown-field
    title: Bad field
    when: {gpu.warp_drive: true}
    then: warn
    because: "x"
    sources: [VLLM_ENGINE_ARGS]
"""
    (rules_copy / "precision.yaml").write_text(text)
    problems = check_problems(rules_dir=rules_copy, scenarios_dir=corpus)
    joined = "\n".join(problems)
    assert re.search(r"rules/precision\.yaml:\d+: rule 'precision/unknown-field': .*unknown fact field", joined)
    assert re.search(r"rules/precision\.yaml:\d+: precision/never-fires: fires in no scenario", joined)
    assert re.search(r"rules/precision\.yaml:\d+: precision/prefers-what-is-rejected: prefers what "
                     r"precision/bf16-needs-ampere rejects", joined)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "facts", repo / "facts")
    shutil.copytree(ROOT / "rules", repo / "rules")
    (repo / "tests" / "scenarios").mkdir(parents=True)
    for name in ("inference-13b-20k-usd", "inference-70b-int4-15k-usd", "qlora-70b-20k-usd",
                 "inference-13b-fp16-workstation-3k-usd"):
        src = ROOT / "tests" / "scenarios" / f"{name}.yaml"
        if src.exists():
            shutil.copy(src, repo / "tests" / "scenarios")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_audit_shows_flipped_recommendations_and_the_rule_edit(repo, monkeypatch):
    # Two used RTX 3090s are the 13B fp16 desk pick; a heavier penalty on used cards behind a 24/7 service flips it.
    cost = repo / "rules" / "power_cost.yaml"
    text = cost.read_text()
    old = "        - req.hours_per_day: {ge: 12.0}\n    then: {penalize: 0.2}"
    assert old in text
    cost.write_text(text.replace(old, "        - req.hours_per_day: {ge: 12.0}\n    then: {penalize: 0.9}", 1))
    monkeypatch.chdir(repo)
    r = run_cli("audit", "--base", "HEAD")
    assert r.code == 0, r.err
    assert "edited `power_cost/used-card-for-service` **then**" in r.out
    assert '{"penalize": 0.2}' in r.out and '{"penalize": 0.9}' in r.out
    assert "(flip)" in r.out
    j = json.loads(run_cli("audit", "--base", "HEAD", "--format", "json").out)
    assert any(d["pick_changed"] for d in j["changed"])
    assert run_cli("audit", "--base", "HEAD", "--fail-on-change").code == 1


def test_audit_works_when_only_a_price_changed(repo, monkeypatch):
    gpus = repo / "facts" / "gpus.yaml"
    text = gpus.read_text()
    entry = text.index("- id: a100-80gb-pcie")
    price = text.index("    usd: ", entry)
    end = text.index("\n", price)
    gpus.write_text(text[:price] + "    usd: 40000" + text[end:])
    monkeypatch.chdir(repo)
    r = run_cli("audit", "--base", "HEAD")
    assert r.code == 0, r.err
    assert "gpu a100-80gb-pcie **price.usd**" in r.out and "→ `40000`" in r.out
    assert "### Scenarios whose recommendation changed" in r.out


def test_audit_between_two_revisions_leaves_the_working_tree_alone(repo, monkeypatch):
    prec = repo / "rules" / "precision.yaml"
    prec.write_text(prec.read_text().replace("then: {penalize: 0.3}", "then: {penalize: 0.02}", 1))
    _git(repo, "commit", "-q", "-am", "head")
    before = prec.read_text()
    monkeypatch.chdir(repo)
    r = run_cli("audit", "--base", "HEAD~1", "--head", "HEAD")
    assert r.code == 0, r.err
    assert "`HEAD~1` → `HEAD`" in r.out
    assert prec.read_text() == before


def test_audit_with_an_unknown_revision_is_a_clean_error(repo, monkeypatch):
    monkeypatch.chdir(repo)
    r = run_cli("audit", "--base", "no-such-branch")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1


def test_the_suite_renders_golden_outputs_as_of_the_golden_day():
    import os

    from expert.governance.golden import GOLDEN_TODAY

    # conftest pins the same day, so price-age warnings in tests/golden do not drift with the calendar.
    assert os.environ["GPU_EXPERT_TODAY"] == GOLDEN_TODAY
