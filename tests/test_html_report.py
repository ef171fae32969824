"""The HTML report: self-contained, with matplotlib charts read from the view model, and all the Markdown carries."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from expert.render import HTML_TOP, render
from expert.render import charts as charts_mod
from tests.conftest import ROOT, run_cli

ADVISE = ("advise", "--budget", "20000", "--model", "13b")
CHART_IDS = ("chart-memory", "chart-capacity", "chart-buy-rent", "chart-score", "chart-cost")
GOLDEN = ROOT / "tests" / "golden"  # what `expert advise` renders (kept current by tests/test_snapshots.py)


def _golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report() -> str:
    return _golden("inference-13b-20k-usd.html")


@pytest.fixture(scope="module")
def doc() -> dict:
    """The same advice as `report`, as the view model (JSON with the HTML report's default --top)."""
    r = run_cli(*ADVISE, "--format", "json", "--top", str(HTML_TOP))
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_the_report_has_its_five_charts_as_inline_svg(report):
    for cid in CHART_IDS:
        m = re.search(rf'<figure class="chart" id="{cid}"><svg [^>]*>', report)
        assert m, cid
    assert report.count("<svg ") == len(CHART_IDS)
    # Inline, not an XML document pasted in: no declaration, no DOCTYPE inside the page.
    assert "<?xml" not in report and report.count("<!DOCTYPE") == 1


def test_the_report_is_self_contained(report):
    # Nothing is fetched: no external script, stylesheet, image or font, and a policy that forbids any.
    assert not re.search(r'<(script|link|img|iframe)\b', report)
    for tag, value in re.findall(r'<([\w:]+)\b[^>]*?\s(?:xlink:)?(?:src|href)="([^"]*)"', report):
        assert value.startswith("#") or (tag == "a" and value.startswith(("https://", "http://"))), (tag, value)
    assert "url(http" not in report and "@import" not in report
    assert "default-src 'none'" in report


def test_links_are_clickable_and_never_mailto(report):
    links = re.findall(r'<a href="([^"]+)">', report)
    assert len(links) > 10 and all(u.startswith(("https://", "http://")) for u in links)
    assert "mailto:" not in report


@pytest.mark.parametrize("case", ["inference-13b-20k-usd", "finetune-70b-500k-usd",
                                  "inference-405b-5k-usd-nothing-fits", "dev-8b-workstation-3k-usd"])
def test_the_html_carries_every_section_of_the_markdown(case):
    md, html = _golden(f"{case}.md"), _golden(f"{case}.html")
    for title in re.findall(r"^##+ (.+)$", md, re.M):
        assert re.search(rf"<h[23][^>]*>{re.escape(title)}</h[23]>", html), title
    # The decision numbers and the pick's memory line are in both.
    for needle in ("System cost", "What it delivers", "Unit cost", "Buy or rent", "Memory (GiB"):
        assert needle in md and needle in html, needle


def test_an_options_table_even_when_nothing_fits():
    html = _golden("inference-405b-5k-usd-nothing-fits.html")
    assert "No configuration fits the 5,000 USD budget" in html
    table = html.split('<h2 id="options">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*><td>", table)
    assert rows and "cheapest over budget" in table, table[:400]


def test_the_why_not_page_is_styled():
    html = _golden("inference-13b-20k-usd-why-not-rtx-4090.html")
    assert "<style>" in html and "<h1>Why not <code>rtx-4090</code>" in html and "default-src 'none'" in html


def test_without_matplotlib_the_report_renders_with_a_one_line_note(monkeypatch, doc):
    charts_mod._CACHE.clear()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    html = render(doc, "html")
    charts_mod._CACHE.clear()
    assert "<svg" not in html and '<h2 id="options">' in html
    note = re.search(r'<p class="note">([^<]*)</p>', html)
    assert note and "pip install" in note.group(1) and "\n" not in note.group(1)


def test_the_chart_svg_is_deterministic(doc):
    # Rendered twice from scratch (no cache), every chart is byte-identical, and so is the whole report.
    charts_mod._CACHE.clear()
    report = run_cli(*ADVISE, "--format", "html").out
    fresh = charts_mod._render_all(charts_mod.chart_data(doc))
    assert len(fresh) == len(CHART_IDS)
    for svg in fresh.values():
        assert svg in report
    assert "<dc:date>" not in report and "Matplotlib v" not in report


def test_charts_plot_the_view_model_numbers(doc):
    empty = {"currency": "USD", "request": {"years": 3.0, "hours_per_day": 24.0, "budget": 1000.0},
             "requirement": {"users": 4}, "recommendation": None, "cheapest_over_budget": None, "options": []}
    data = charts_mod.chart_data(empty)
    assert data["options"] == [] and data["points"] == []
    assert set(charts_mod._render_all(data)) == {"memory", "capacity", "buy_rent", "score", "cost"}
    data = charts_mod.chart_data(doc)
    pick = [p for p in data["points"] if p["pick"]]
    assert len(pick) == 1 and pick[0]["y"] == doc["recommendation"]["capex"]
    assert pick[0]["x"] == doc["recommendation"]["sizing"]["users_capacity"]
    assert len(data["points"]) > len({o["system"] for o in doc["options"]})
    assert {o["label"].split(": ", 1)[1] for o in data["options"]} == {o["system"] for o in doc["options"]}


def test_matplotlib_is_imported_only_when_html_renders():
    # No module-level import of matplotlib anywhere in the package; charts.py imports it inside functions.
    for path in (ROOT / "expert").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "matplotlib" for n in names), path
            assert not (isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("charts")), path


def test_the_render_stage_imports_nothing_later():
    tree = ast.parse(Path(charts_mod.__file__).read_text(encoding="utf-8"))
    mods = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    assert mods == [], mods
