"""The rule reference in docs/rules/ is generated from the YAML and never drifts from it."""

from __future__ import annotations

from expert.governance.ruledocs import condition_text, render_docs, write_docs

from .conftest import ROOT, run_cli


def test_committed_rule_reference_matches_the_rules(cat, rules):
    changed = write_docs(rules, cat, ROOT / "docs" / "rules", check=True)
    assert changed == [], f"run `expert rules docs`: {changed} out of date"


def test_every_rule_has_a_section_with_its_sources_and_bases(cat, rules):
    pages = render_docs(rules, cat)
    for r in rules.rules:
        page = pages[f"{r.factor}.md"]
        section = page.split(f"## `{r.id}`", 1)[1].split("\n## ", 1)[0]
        for sid in r.sources:
            assert f"`{sid}`" in section and "](http" in section, (r.id, sid)
        for key in r.basis:
            assert f"- `{key}`: " in section, (r.id, key)
        assert f"[`{r.id}`]({r.factor}.md#" in pages["README.md"]


def test_conditions_read_as_text():
    cond = {"all": [{"memory.fits": True}, {"memory.headroom_fraction": {"lt": 0.1}},
                    {"any": [{"gpu.id": {"in": ["a", "b"]}}, {"count": {"gt": {"field": "fit.min_count"}}}]}]}
    assert condition_text(cond) == [
        "- all of:", "  - `memory.fits` = `true`", "  - `memory.headroom_fraction` < `0.1`", "  - any of:",
        "    - `gpu.id` in [`a`, `b`]", "    - `count` > `fit.min_count`"]


def test_rules_docs_check_fails_on_a_stale_page(tmp_path):
    r = run_cli("rules", "docs", "--output", str(tmp_path))
    assert r.code == 0 and (tmp_path / "README.md").is_file()
    (tmp_path / "workload.md").write_text("stale\n")
    r = run_cli("rules", "docs", "--output", str(tmp_path), "--check")
    assert r.code == 1 and "workload.md" in r.out
