"""Reference pages for the rules, generated from rules/*.yaml: one page per factor, one section per rule.

`expert rules docs` rewrites docs/rules/; `expert rules docs --check` (and the test suite) fails when
the committed pages are not what the YAML says, so the reference can never drift from the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..rulelang import FACTORS, Rule, RuleSet

TITLES = {"model_size": "Model size", "precision": "Precision", "power_cost": "Power and cost",
          "ecosystem": "Ecosystem", "scalability": "Scalability", "workload": "Workload"}
_OPS = {"eq": "=", "ne": "≠", "gt": ">", "ge": "≥", "lt": "<", "le": "≤", "in": "in"}


def condition_text(cond: dict[str, Any], indent: int = 0) -> list[str]:
    """A condition tree as Markdown list lines a reviewer reads without knowing the YAML form."""
    pad = "  " * indent
    (key, val), = cond.items()
    if key in ("all", "any"):
        lines = [f"{pad}- {'all of' if key == 'all' else 'any of'}:"]
        for sub in val:
            lines += condition_text(sub, indent + 1)
        return lines
    op, arg = "eq", val
    if isinstance(val, dict) and "field" not in val:
        (op, arg), = val.items()
    if isinstance(arg, dict):
        shown = f"`{arg['field']}`"
    elif isinstance(arg, list):
        shown = "[" + ", ".join(f"`{a}`" for a in arg) + "]"
    else:
        shown = f"`{str(arg).lower() if isinstance(arg, bool) else arg}`"
    return [f"{pad}- `{key}` {_OPS[op]} {shown}"]


def _action(rule: Rule) -> str:
    a = rule.action
    return f"{a.kind} {a.weight:g}" if a.kind in ("prefer", "penalize") else a.kind


def _example(ex: dict[str, Any]) -> str:
    req = ", ".join(f"{k}={v}" for k, v in ex.get("request", {}).items())
    c = ex.get("candidate", {})
    return f"{c.get('count')} x `{c.get('gpu')}` @ {c.get('precision')} for ({req})"


def rule_section(rule: Rule, cat: Catalog) -> list[str]:
    lines = [f"## `{rule.id}`", "", f"**{rule.title}** — action: **{_action(rule)}**"
             + (f", scope: {rule.scope}" if rule.scope else "") + f" · defined in `{rule.file}:{rule.line}`", ""]
    lines += ["When:", "", *condition_text(rule.when), ""]
    lines += ["Because (rendered with the candidate's numbers):", "", f"> {' '.join(rule.because.split())}", ""]
    if rule.basis:
        lines += ["Basis of each threshold and weight:", ""]
        lines += [f"- `{k}`: {v}" for k, v in rule.basis.items()]
        lines.append("")
    lines += ["Sources:", ""]
    for sid in rule.sources:
        src = cat.sources.get(sid)
        if src is None:
            lines.append(f"- `{sid}` (not in the registry)")
        else:
            addr = src.address()
            lines.append(f"- `{sid}`: " + (f"[{src.cite()}]({addr})" if addr else src.cite())
                         + f" — {src.verification}")
    lines.append("")
    for key, title in (("fires", "Fires on"), ("does_not_fire", "Does not fire on")):
        exs = rule.examples.get(key) or []
        if exs:
            lines += [f"{title}:", "", *[f"- {_example(e)}" for e in exs], ""]
    return lines


def render_docs(rules: RuleSet, cat: Catalog) -> dict[str, str]:
    """file name -> Markdown: README.md (index) and one page per factor."""
    by_factor = rules.by_factor()
    index = ["# Rule reference", "", "Generated from `rules/*.yaml` by `expert rules docs`; do not edit by hand.",
             "", "| factor | rule | action | title |", "|---|---|---|---|"]
    pages: dict[str, str] = {}
    for factor in FACTORS:
        rs = by_factor.get(factor, [])
        if not rs:
            continue
        body = [f"# {TITLES.get(factor, factor)} rules", "",
                f"Generated from `rules/{factor}.yaml` by `expert rules docs`; do not edit by hand.", ""]
        for r in rs:
            anchor = r.id.replace("/", "").replace(".", "")
            index.append(f"| {factor} | [`{r.id}`]({factor}.md#{anchor}) | {_action(r)} | {r.title} |")
            body += rule_section(r, cat)
        pages[f"{factor}.md"] = "\n".join(body).rstrip() + "\n"
    pages["README.md"] = "\n".join(index) + "\n"
    return pages


def write_docs(rules: RuleSet, cat: Catalog, directory: Path, check: bool = False) -> list[str]:
    """Write (or with `check`, compare) the pages; returns the names that differ or were written."""
    changed = []
    for name, text in render_docs(rules, cat).items():
        path = directory / name
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        changed.append(name)
        if not check:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return changed
