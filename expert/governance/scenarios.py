"""The golden scenario corpus (tests/scenarios/*.yaml): requests with the outcome an expert expects.

    request: {model: 13b, budget: 20000, workload: inference, ...}   # any `expert advise` option
    expect:
      pick: {gpu_in: [...], gpu_not_in: [...], precision_in: [...], count_max: 2, capex_max: 20000,
             segment_in: [...], vendor_in: [...]}
      nothing_fits: false          # true: no configuration within budget
      fires: [rule ids]            # must fire on some candidate
      pick_fires: [rule ids]       # must fire on the pick
      does_not_fire: [rule ids]    # must fire on no candidate
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..core.errors import ExpertError, InputError
from ..core.schema import Field, opt, validate
from ..core.yamlio import load_yaml_file, plain
from ..decide.advice import Advice, advise
from ..request import build_request
from ..rulelang import RuleSet

_PICK_SPEC = {
    "gpu": opt("str"), "gpu_in": opt("list", item=Field("str")), "gpu_not_in": opt("list", item=Field("str")),
    "precision": opt("str"), "precision_in": opt("list", item=Field("str")),
    "precision_not_in": opt("list", item=Field("str")), "count": opt("int"), "count_max": opt("int"),
    "count_min": opt("int"), "capex_max": opt("num"), "segment_in": opt("list", item=Field("str")),
    "vendor_in": opt("list", item=Field("str")), "fits": opt("bool"),
}
SCENARIO_SPEC = {
    "description": opt("str"),
    "request": Field("map"),
    "expect": Field("map", spec={
        "pick": opt("map", spec=_PICK_SPEC),
        "nothing_fits": opt("bool"),
        "fires": opt("list", item=Field("str")),
        "pick_fires": opt("list", item=Field("str")),
        "does_not_fire": opt("list", item=Field("str")),
        "cheapest_over_budget_gpu_in": opt("list", item=Field("str")),
    }),
}
# The keyword arguments of request.build_request a scenario may set (the CLI's options, minus output ones).
REQUEST_KEYS = set(inspect.signature(build_request).parameters) - {"cat", "policy", "default_context"}


class ScenarioError(ExpertError):
    pass


@dataclass
class Scenario:
    name: str
    path: Path
    description: str
    request: dict[str, Any]
    expect: dict[str, Any]


def default_dir() -> Path:
    here = Path.cwd() / "tests" / "scenarios"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "tests" / "scenarios"


def scenario_dir(path: str | None) -> Path:
    """The corpus directory a governance command reads (`--scenarios`, else the checkout's)."""
    d = Path(path) if path else default_dir()
    if not d.is_dir():
        raise InputError(f"--scenarios: {d} is not a directory")
    return d


def load_scenarios(directory: Path | None = None) -> list[Scenario]:
    d = directory or default_dir()
    out = []
    for path in sorted(d.glob("*.yaml")):
        doc = load_yaml_file(path, f"{d.name}/{path.name}")
        validate(doc, SCENARIO_SPEC, file=str(path), entry=path.stem, error=ScenarioError)
        unknown = set(doc["request"]) - REQUEST_KEYS
        if unknown:
            raise ScenarioError(f"{path}: request: unknown option(s) {', '.join(sorted(unknown))}")
        out.append(Scenario(path.stem, path, doc.get("description", ""), plain(doc["request"]), plain(doc["expect"])))
    return out


# One process (a test session, `rules check`, `audit`) asks for the same scenario several times:
# results are kept per (facts digest, rules digest, request). Digests are hashes of the data files,
# so an edited catalog or rule set never reuses a stale result.
_RESULTS: dict[tuple[str, str, str], Advice] = {}
_MAX_RESULTS = 256


# Called with each scenario's name after it ran (progress lines of the governance commands on a terminal).
_ON_SCENARIO: list[Callable[[str], None]] = []


@contextlib.contextmanager
def on_each_scenario(callback: Callable[[str], None]) -> Iterator[None]:
    _ON_SCENARIO.append(callback)
    try:
        yield
    finally:
        _ON_SCENARIO.remove(callback)


def run_scenario(cat: Catalog, rules: RuleSet, sc: Scenario) -> Advice:
    key = (cat.digest, rules.digest, json.dumps(sc.request, sort_keys=True, default=str))
    if key not in _RESULTS:
        if len(_RESULTS) >= _MAX_RESULTS:
            _RESULTS.pop(next(iter(_RESULTS)))
        _RESULTS[key] = advise(cat, rules, build_request(cat, **sc.request))
    for callback in _ON_SCENARIO:
        callback(sc.name)
    return _RESULTS[key]


def check_scenario(sc: Scenario, result: Advice) -> list[str]:
    """Every way the outcome differs from the expectation, as readable lines (empty: passes)."""
    problems: list[str] = []
    exp = sc.expect
    o = result.outcome
    fired = set(o.fired_rules)
    pick = o.pick
    if "nothing_fits" in exp and exp["nothing_fits"] != (pick is None):
        problems.append(f"nothing_fits expected {exp['nothing_fits']}, got pick "
                        f"{pick.candidate.label if pick else None}")
    for rid in exp.get("fires", []):
        if rid not in fired:
            problems.append(f"rule {rid} was expected to fire but did not")
    for rid in exp.get("does_not_fire", []):
        if rid in fired:
            problems.append(f"rule {rid} fired on {o.fired_rules[rid]} candidate(s) but should not")
    if exp.get("pick_fires"):
        on_pick = {v.rule.id for v in pick.verdicts} if pick else set()
        for rid in exp["pick_fires"]:
            if rid not in on_pick:
                problems.append(f"rule {rid} was expected to fire on the pick but did not")
    want = exp.get("pick")
    if want:
        if pick is None:
            problems.append("expected a pick, got none")
        else:
            c = pick.candidate
            checks = [
                ("gpu", lambda v: c.gpu.id == v), ("gpu_in", lambda v: c.gpu.id in v),
                ("gpu_not_in", lambda v: c.gpu.id not in v), ("precision", lambda v: c.precision.id == v),
                ("precision_in", lambda v: c.precision.id in v),
                ("precision_not_in", lambda v: c.precision.id not in v),
                ("count", lambda v: c.count == v), ("count_max", lambda v: c.count <= v),
                ("count_min", lambda v: c.count >= v), ("capex_max", lambda v: c.capex <= v),
                ("segment_in", lambda v: c.gpu.segment in v), ("vendor_in", lambda v: c.gpu.vendor in v),
                ("fits", lambda v: c.estimate.fits == v),
            ]
            for key, ok in checks:
                if key in want and not ok(want[key]):
                    problems.append(f"pick {c.label} breaks {key}: {want[key]}")
    if "cheapest_over_budget_gpu_in" in exp:
        over = o.cheapest_over_budget
        if over is None or over.candidate.gpu.id not in exp["cheapest_over_budget_gpu_in"]:
            problems.append(f"cheapest over budget expected in {exp['cheapest_over_budget_gpu_in']}, got "
                            f"{over.candidate.label if over else None}")
    return problems


def coverage(cat: Catalog, rules: RuleSet, scenarios: list[Scenario]) -> dict[str, list[tuple[str, int]]]:
    """rule id -> [(scenario, candidates it fired on)] over the corpus."""
    out: dict[str, list[tuple[str, int]]] = {r.id: [] for r in rules.rules}
    for sc in scenarios:
        result = run_scenario(cat, rules, sc)
        for rid, n in result.outcome.fired_rules.items():
            out.setdefault(rid, []).append((sc.name, n))
    return out


def snapshot(result: Advice) -> dict[str, Any]:
    """What a reviewer should see change when a rule or a fact changes: the outcome, not the prose."""
    o = result.outcome

    def brief(r) -> dict[str, Any] | None:
        if r is None:
            return None
        c = r.candidate
        t = c.estimate.throughput
        return {
            "label": c.label, "score": round(r.score, 1), "capex": round(c.capex), "tco": round(c.tco),
            "per_gpu_gib": round(c.estimate.memory_gib["per_gpu"], 1),
            "decode_tokens_per_s": None if t["decode_tokens_per_s"] is None else round(t["decode_tokens_per_s"], 1),
            "train_tokens_per_s": None if t["train_tokens_per_s"] is None else round(t["train_tokens_per_s"]),
            "rules": sorted({v.rule.id for v in r.verdicts}),
        }

    return {
        "pick": brief(o.pick),
        "alternatives": {label: brief(r)["label"] for label, r in o.alternatives},
        "cheapest_over_budget": brief(o.cheapest_over_budget),
        "fired_rules": o.fired_rules,
    }


def snapshot_dir(scenarios_dir: Path) -> Path:
    return scenarios_dir.parent / "snapshots"
