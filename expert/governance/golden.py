"""Rendered golden outputs (text, Markdown, HTML, JSON) of a few scenarios, compared as readable diffs.

The outcome snapshots (scenarios.snapshot) catch a change of pick; these catch a change of what the
reader is told: a lost `why:` line, a missing source link, a warning that no longer renders."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog
from ..core.errors import ExpertError
from ..core.schema import Field, opt, validate
from ..core.yamlio import load_yaml_file
from ..decide.advice import advise
from ..render import FORMATS, default_top, render
from ..request import build_request
from ..rulelang import RuleSet
from .scenarios import Scenario

# "text" is `advise --verbose`; "summary" the one-screen text `advise` prints by default.
EXTENSIONS = {"summary": "summary.txt", "text": "txt", "markdown": "md", "html": "html", "json": "json"}
_CASE = {"name": Field("str"), "scenario": Field("str"), "why_not": opt("str")}
DIGEST = "<digest>"


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str
    why_not: str | None = None


# The day golden outputs are rendered as of: price-age warnings ("244 days old") would otherwise drift
# every day. `expert rules snapshots` and the test suite both pin GPU_EXPERT_TODAY to it (a later
# date is a deliberate change: update it and regenerate).
GOLDEN_TODAY = "2026-12-01"


def pin_today() -> None:
    """Render as of GOLDEN_TODAY unless the caller pinned another day."""
    os.environ.setdefault("GPU_EXPERT_TODAY", GOLDEN_TODAY)

def golden_dir(scenarios_dir: Path) -> Path:
    return scenarios_dir.parent / "golden"


def load_cases(directory: Path) -> list[Case]:
    path = directory / "cases.yaml"
    if not path.is_file():
        return []
    doc = load_yaml_file(path)
    validate(doc, {"cases": Field("list", item=Field("map", spec=_CASE))}, file=str(path), entry="",
             error=ExpertError)
    return [Case(c["name"], c["scenario"], c.get("why_not")) for c in doc["cases"]]


def render_case(cat: Catalog, rules: RuleSet, case: Case, scenarios: dict[str, Scenario]) -> dict[str, str]:
    """Every format of one case, rendered exactly as `expert advise` renders it."""
    if case.scenario not in scenarios:
        raise ExpertError(f"golden case {case.name}: unknown scenario {case.scenario!r}")
    result = advise(cat, rules, build_request(cat, **scenarios[case.scenario].request))
    out = {}
    # The why-not JSON repeats the whole advice document: its prose formats are what a reader sees.
    for fmt in (f for f in FORMATS if not (case.why_not and f == "json")):
        doc = result.to_dict(detail=fmt == "json", top=default_top(fmt, None))
        doc["catalog_digest"] = doc["rules_digest"] = DIGEST
        if case.why_not:
            doc["why_not"] = {"gpu": case.why_not, "candidates": result.why_not(case.why_not)}
            out[fmt] = render(doc, fmt, template="whynot")
        else:
            out[fmt] = render(doc, fmt)
            if fmt == "text":
                out["summary"] = render(doc, fmt, template="summary")
    return out


def compare(expected: str | None, actual: str, name: str, max_lines: int = 60) -> list[str]:
    """A unified diff a reviewer can read (empty when equal)."""
    if expected == actual:
        return []
    if expected is None:
        return [f"--- {name}: missing (run `expert rules snapshots --update`)"]
    diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), f"{name} (committed)",
                                     f"{name} (now)", lineterm="", n=1))
    if len(diff) > max_lines:
        diff = diff[:max_lines] + [f"... {len(diff) - max_lines} more diff lines"]
    return diff


def check_golden(cat: Catalog, rules: RuleSet, scenarios: list[Scenario], directory: Path,
                 update: bool = False) -> tuple[list[str], list[Path]]:
    """(diff lines of every golden file that drifted, files rewritten when `update`)."""
    by_name = {s.name: s for s in scenarios}
    diffs: list[str] = []
    written: list[Path] = []
    for case in load_cases(directory):
        for fmt, text in render_case(cat, rules, case, by_name).items():
            path = directory / f"{case.name}.{EXTENSIONS[fmt]}"
            old = path.read_text(encoding="utf-8") if path.is_file() else None
            if old == text:
                continue
            if update:
                path.write_text(text, encoding="utf-8")
                written.append(path)
            else:
                diffs += compare(old, text, f"golden/{path.name}")
    return diffs, written
