"""The Markdown justification reads as a purchase request: no internal names, clickable sources, real risks."""

from __future__ import annotations

import json
import re

import pytest

from expert.governance.golden import load_cases
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
# The committed golden outputs are what `expert advise` renders (tests/test_snapshots.py keeps them current):
# reading them costs no advise run.
CASES = [c.name for c in load_cases(GOLDEN) if not c.why_not]


@pytest.fixture(scope="module", params=CASES)
def both(request) -> tuple[str, dict]:
    md = (GOLDEN / f"{request.param}.md").read_text(encoding="utf-8")
    return md, json.loads((GOLDEN / f"{request.param}.json").read_text(encoding="utf-8"))


def _section(md: str, title: str) -> str:
    return md.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_it_has_the_parts_of_a_purchase_request(both):
    md, _ = both
    for title in ("Summary", "Requirements", "Options compared", "Decision factors", "Risks", "Assumptions",
                  "Sources"):
        assert f"\n## {title}\n" in md, title
    for needle in ("| System cost | What it delivers | Unit cost | Buy or rent |", "Sized for **"):
        assert needle in md


def test_no_internal_names(both):
    md, doc = both
    # Rule-engine field names, action keywords with weights, rule and source ids are for engineers (JSON).
    assert not re.search(r"`(req|gpu|precision|memory|system|candidate|model)\.[a-z_]+`", md)
    assert not re.search(r"\b(penalize|prefer|reject|warn) [0-9.]+\b", md)
    assert "Values:" not in md
    for rule in doc["fired_rules"]:
        assert f"`{rule}`" not in md, rule
    for s in doc["sources"]:
        assert f"`{s['id']}`" not in md and f"[{s['id']}]" not in md, s["id"]


def test_sources_are_clickable_links_and_never_mailto(both):
    md, doc = both
    sources = _section(md, "Sources")
    links = re.findall(r"\]\(<([^>]+)>\)", md)
    assert links and all(u.startswith(("https://", "http://")) for u in links)
    assert "mailto:" not in md
    with_url = [s for s in doc["sources"] if s["url"].startswith("http")]
    assert len(re.findall(r"^\d+\. \[", sources, re.M)) == len(with_url)


def test_risks_are_risks_of_the_presented_options_only(both, cat):
    md, doc = both
    risks = _section(md, "Risks")
    shown = {o["gpu"] for o in doc["options"]} | {doc[k]["gpu"] for k in ("recommendation", "cheapest_over_budget")
                                                   if doc.get(k)}
    for gpu in cat.gpus:
        if re.search(rf"(?<![\w-]){re.escape(gpu)}(?![\w-])", risks):
            assert gpu in shown, f"Risks names {gpu}, which the report does not present"
    assert "\n## Suggestions" not in md  # "N x card would hold it" lines name cards the report rejected
