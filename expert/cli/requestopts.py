"""The request options of `advise`, shared by `compare` and `sweep`: same names, same parsing, same defaults."""

from __future__ import annotations

import inspect
from typing import Any

import click


def request_param_names() -> list[str]:
    from ..request import build_request

    return [n for n in inspect.signature(build_request).parameters if n not in ("cat", "policy", "default_context")]


def request_params(advise: click.Command) -> list[click.Parameter]:
    """advise's options that are fields of the request (--budget, --model, --workload, ..., --condition)."""
    names = set(request_param_names())
    return [p for p in advise.params if p.name in names]


def option_names(advise: click.Command) -> dict[str, str]:
    """Every spelling a sweep row may use for a request option -> the build_request keyword:
    `prompt-tokens`, `--prompt-tokens` and `prompt_tokens`; `stack` and `stacks`."""
    out: dict[str, str] = {}
    for p in request_params(advise):
        assert p.name
        out[p.name] = p.name
        for opt in p.opts:
            bare = opt.lstrip("-")
            out[bare] = out[bare.replace("-", "_")] = out[opt] = p.name
    return out


def request_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    names = set(request_param_names())
    return {k: v for k, v in values.items() if k in names}


def gpu_pool(cat: Any, only: str | None, exclude: str | None) -> list[Any] | None:
    """The candidate pool of --only / --exclude (None: the whole catalog, today's behaviour)."""
    from ..core.errors import InputError
    from ..request import resolve_gpus

    if only is None and exclude is None:
        return None
    keep = resolve_gpus(cat, only, "--only") if only is not None else list(cat.gpus)
    drop = set(resolve_gpus(cat, exclude, "--exclude")) if exclude is not None else set()
    pool = [cat.gpus[g] for g in keep if g not in drop]
    if not pool:
        raise InputError("--only/--exclude: no GPU is left to weigh")
    return pool
