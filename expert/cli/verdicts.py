"""`estimate` answers for one configuration; these are the rules' verdicts on that same configuration.

Without them `estimate --precision fp8 --gpu a100-80gb-sxm` prints numbers for something `advise` would
never recommend (no FP8 tensor cores), and nothing says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..request import Request


def rejections(req: Request, gpu_id: str, count: int) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """Reject verdicts of the rules on `count x gpu` at the request's precision, and the counts advise weighs.

    Budget-scoped rules are left out: estimate has no budget."""
    from ..candidates import build_candidates
    from ..rulelang.engine import fire
    from ..rulelang.facts import candidate_fact
    from ..store import load_all

    cat, rules = load_all()
    gpu = cat.gpus[gpu_id]
    cands = build_candidates(cat, req, [gpu])
    counts = tuple(sorted({c.count for c in cands}))
    if count not in counts:
        # A count advise never weighs (3 GPUs, one SXM module) still gets the verdicts of every rule.
        cands = build_candidates(cat, req, [dataclasses.replace(gpu, counts=(count,))])
    match = [c for c in cands if c.count == count and c.precision.id == req.precision]
    if not match:
        return [], counts
    fact = candidate_fact(cat, match[0])
    out = []
    for f in fire(rules, [fact]):
        rule = rules.by_id[f.rule_id]
        if rule.action.kind == "reject" and rule.scope != "budget":
            out.append({"rule": rule.id, "because": rule.render(fact)})
    return out, counts


def warn_rejections(req: Request, gpu_id: str, count: int) -> list[dict[str, Any]]:
    """Warn on stderr, one line per rule, when `advise` would reject the configuration estimated."""
    found, counts = rejections(req, gpu_id, count)
    if count not in counts:
        click.echo(f"expert: warning: advise does not weigh {count} x {gpu_id} for {req.workload} "
                   f"(counts it weighs: {', '.join(map(str, counts))})", err=True)
    for v in found:
        click.echo(f"expert: warning: the rules reject this configuration: {v['rule']}: {v['because']}", err=True)
    return found
