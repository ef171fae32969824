"""`expert audit`: which recommendations of the scenario corpus a change to rules/ or facts/ flips.

The base (and optionally the head) revision is read through git (`git ls-tree` / `git show`) into a
temporary directory; the working tree is never touched.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ExpertError, InputError
from ..rulelang.engine import forced_fresh


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise InputError("audit: git is not installed") from None
    if res.returncode != 0:
        msg = res.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"audit: git {' '.join(args[:2])}: {msg[-1] if msg else 'failed'}")
    return res.stdout


def repo_root(start: Path) -> Path:
    return Path(_git(["rev-parse", "--show-toplevel"], start).decode().strip())


def materialize(root: Path, rev: str, dest: Path, dirs: tuple[str, ...] = ("facts", "rules")) -> None:
    """Copy `dirs` as they are at `rev` into `dest` (read through git objects only)."""
    if not rev or rev.startswith("-") or any(c.isspace() or not c.isprintable() for c in rev):
        raise InputError(f"audit: {rev!r} is not a git revision (expected e.g. main, HEAD~1 or a commit id)")
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root)
    except InputError:
        raise InputError(f"audit: cannot resolve revision {rev!r} to a commit in {root}") from None
    for d in dirs:
        listing = _git(["ls-tree", "-r", "--name-only", rev, "--", d], root).decode().splitlines()
        (dest / d).mkdir(parents=True, exist_ok=True)
        for path in listing:
            blob = _git(["show", f"{rev}:{path}"], root)
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)


@dataclass
class Side:
    label: str
    facts: Path | None
    rules: Path | None


@dataclass
class ScenarioDiff:
    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    newly_fire: list[str] = field(default_factory=list)
    stop_firing: list[str] = field(default_factory=list)

    @property
    def pick_changed(self) -> bool:
        return self.before["pick"] != self.after["pick"]


def _summary(result) -> dict[str, Any]:
    from .scenarios import snapshot

    snap = snapshot(result)
    pick = snap["pick"]
    keys = ("capex", "tco", "score", "decode_tokens_per_s", "train_tokens_per_s", "per_gpu_gib")
    return {
        "pick": pick["label"] if pick else None,
        "numbers": {k: pick[k] for k in keys} if pick else None,
        "alternatives": [f"{label}: {cand}" for label, cand in snap["alternatives"].items()],
        "fired": snap["fired_rules"],
    }


def _run_side(side: Side, scenarios) -> dict[str, dict[str, Any]]:
    from ..store import load_all
    from .scenarios import run_scenario

    cat, rules = load_all(side.facts, side.rules)
    out = {}
    with forced_fresh():  # an audit fires every fact itself: no verdict kept from an earlier request
        for sc in scenarios:
            try:
                out[sc.name] = _summary(run_scenario(cat, rules, sc))
            except ExpertError as exc:
                out[sc.name] = {"pick": None, "numbers": None, "alternatives": [], "fired": {}, "error": str(exc)}
    return out


def _rule_changes(base: Side, head: Side) -> dict[str, Any]:
    from ..rulelang import load_rules

    b = {r.id: r.raw for r in load_rules(base.rules).rules}
    h = {r.id: r.raw for r in load_rules(head.rules).rules}
    edits = {}
    for rid in sorted(set(b) & set(h)):
        if b[rid] != h[rid]:
            fields = {}
            for k in sorted(set(b[rid]) | set(h[rid])):
                if b[rid].get(k) != h[rid].get(k):
                    fields[k] = {"before": b[rid].get(k), "after": h[rid].get(k)}
            edits[rid] = fields
    return {"added": sorted(set(h) - set(b)), "removed": sorted(set(b) - set(h)), "edited": edits}


def _fact_changes(base: Side, head: Side) -> list[dict[str, Any]]:
    from ..catalog import load_catalog

    b, h = load_catalog(base.facts), load_catalog(head.facts)
    out = []
    for kind, bb, hh in (("gpu", {g.id: g.raw for g in b.gpus.values()}, {g.id: g.raw for g in h.gpus.values()}),):
        for eid in sorted(set(bb) | set(hh)):
            if bb.get(eid) == hh.get(eid):
                continue
            if eid not in bb or eid not in hh:
                out.append({"entry": f"{kind} {eid}", "change": "added" if eid in hh else "removed"})
                continue
            for path, before, after in _leaf_diff(bb[eid], hh[eid]):
                out.append({"entry": f"{kind} {eid}", "field": path, "before": before, "after": after})
    for attr in ("models", "precisions"):
        bb, hh = getattr(b, attr), getattr(h, attr)
        for eid in sorted(set(bb) | set(hh)):
            if bb.get(eid) != hh.get(eid):
                out.append({"entry": f"{attr[:-1]} {eid}", "change": "edited"})
    if b.energy != h.energy:
        out.append({"entry": "energy", "change": "edited"})
    if b.efficiency != h.efficiency:
        out.append({"entry": "efficiency", "change": "edited"})
    return out


def _leaf_diff(a: Any, b: Any, prefix: str = ""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from _leaf_diff(a.get(k), b.get(k), f"{prefix}{k}.")
    elif a != b:
        yield prefix.rstrip("."), a, b


def run_audit(base_rev: str, head_rev: str | None, scenarios_dir: Path | None) -> dict[str, Any]:
    from .scenarios import load_scenarios

    root = repo_root(Path.cwd())
    with tempfile.TemporaryDirectory(prefix="expert-audit-") as tmp:
        tmpd = Path(tmp)
        materialize(root, base_rev, tmpd / "base")
        base = Side(base_rev, tmpd / "base" / "facts", tmpd / "base" / "rules")
        if head_rev:
            materialize(root, head_rev, tmpd / "head")
            head = Side(head_rev, tmpd / "head" / "facts", tmpd / "head" / "rules")
        else:
            head = Side("working tree", root / "facts", root / "rules")
        scs = load_scenarios(scenarios_dir)
        before, after = _run_side(base, scs), _run_side(head, scs)
        diffs = []
        for sc in scs:
            b, a = before[sc.name], after[sc.name]
            newly = sorted(set(a["fired"]) - set(b["fired"]))
            stop = sorted(set(b["fired"]) - set(a["fired"]))
            if b["pick"] != a["pick"] or b["alternatives"] != a["alternatives"] or b["numbers"] != a["numbers"] \
                    or newly or stop:
                diffs.append(ScenarioDiff(sc.name, b, a, newly, stop))
        return {
            "base": base.label, "head": head.label, "scenarios": len(scs),
            "changed": [d.__dict__ | {"pick_changed": d.pick_changed} for d in diffs],
            "rule_changes": _rule_changes(base, head),
            "fact_changes": _fact_changes(base, head),
        }


def to_markdown(rep: dict[str, Any]) -> str:
    lines = [f"## gpu-expert audit: `{rep['base']}` → `{rep['head']}`", ""]
    flips = [d for d in rep["changed"] if d["pick_changed"]]
    lines.append(f"{len(rep['changed'])} of {rep['scenarios']} scenarios change; {len(flips)} recommendation(s) flip.")
    lines.append("")
    rc = rep["rule_changes"]
    if rc["added"] or rc["removed"] or rc["edited"]:
        lines.append("### Rule changes")
        for rid in rc["added"]:
            lines.append(f"- added `{rid}`")
        for rid in rc["removed"]:
            lines.append(f"- removed `{rid}`")
        for rid, fields in rc["edited"].items():
            for k, v in fields.items():
                lines.append(f"- edited `{rid}` **{k}**: `{json.dumps(v['before'])}` → `{json.dumps(v['after'])}`")
        lines.append("")
    if rep["fact_changes"]:
        lines.append("### Fact changes")
        for f in rep["fact_changes"]:
            if "field" in f:
                lines.append(f"- {f['entry']} **{f['field']}**: `{f['before']}` → `{f['after']}`")
            else:
                lines.append(f"- {f['entry']}: {f['change']}")
        lines.append("")
    if rep["changed"]:
        lines.append("### Scenarios whose recommendation changed")
        lines.append("")
        lines.append("| scenario | pick before | pick after | key numbers before → after |")
        lines.append("|---|---|---|---|")
        for d in rep["changed"]:
            b, a = d["before"], d["after"]
            nb = b["numbers"] or {}
            na = a["numbers"] or {}
            nums = ", ".join(f"{k} {nb.get(k)} → {na.get(k)}" for k in sorted(set(nb) | set(na))
                             if nb.get(k) != na.get(k)) or "unchanged"
            mark = " **(flip)**" if d["pick_changed"] else ""
            lines.append(f"| {d['name']}{mark} | {b['pick']} | {a['pick']} | {nums} |")
        lines.append("")
        for d in rep["changed"]:
            details = []
            if d["newly_fire"]:
                details.append("newly fire: " + ", ".join(f"`{r}`" for r in d["newly_fire"]))
            if d["stop_firing"]:
                details.append("stop firing: " + ", ".join(f"`{r}`" for r in d["stop_firing"]))
            if d["before"]["alternatives"] != d["after"]["alternatives"]:
                details.append("alternatives: " + "; ".join(d["before"]["alternatives"]) + " → "
                               + "; ".join(d["after"]["alternatives"]))
            counts = {r: (d["before"]["fired"].get(r, 0), d["after"]["fired"].get(r, 0))
                      for r in set(d["before"]["fired"]) | set(d["after"]["fired"])}
            moved = [f"`{r}` {x}→{y}" for r, (x, y) in sorted(counts.items()) if x != y and x and y]
            if moved:
                details.append("firings: " + ", ".join(moved))
            if details:
                lines.append(f"- **{d['name']}**: " + "; ".join(details))
    else:
        lines.append("No scenario's recommendation changes.")
    return "\n".join(lines) + "\n"
