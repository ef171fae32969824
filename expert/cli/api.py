"""The Python API: `from expert import advise, estimate` for notebooks and services.

Each function takes the command's options as keyword arguments (the parameter names of `expert advise` /
`expert estimate --help`, with underscores: `prompt_tokens="2K"`, `only="h100-sxm,l40s"`, `top=5`) and
returns the document `--format json` prints, as a dict: the same view model, schema_version included.
Bad input raises `expert.core.errors.InputError` (an `ExpertError`) with the one-line message the CLI prints.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import click

from ..core.errors import InputError


def _argv(cmd: click.Command, options: dict[str, Any]) -> list[str]:
    by_name = {p.name: p for p in cmd.params if isinstance(p, click.Option)}
    argv: list[str] = []
    for key, value in options.items():
        p = by_name.get(key) or by_name.get(key.replace("-", "_"))
        if p is None or key in ("fmt", "output", "format"):
            allowed = sorted(n for n in by_name if n not in ("fmt", "output"))
            raise InputError(f"{cmd.name}(): unknown option {key!r}; allowed: {', '.join(allowed)}")
        if value is None:
            continue
        if p.is_flag:
            if value:
                argv.append(p.opts[0])
            continue
        argv += [p.opts[0], str(value)]
    return argv


def _run(name: str, options: dict[str, Any]) -> dict[str, Any]:
    from . import cli

    cmd = cli.commands[name]
    argv = _argv(cmd, options) + ["--format", "json"]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with cmd.make_context(name, argv) as ctx:
                cmd.invoke(ctx)
    except click.UsageError as exc:
        raise InputError(f"{name}(): {exc.format_message()}") from None
    doc = json.loads(out.getvalue())
    warnings = [line.removeprefix("expert: warning: ") for line in err.getvalue().splitlines() if line.strip()]
    if warnings:
        doc["cli_warnings"] = warnings
    return doc


def advise(model: str, budget: str | float, **options: Any) -> dict[str, Any]:
    """`expert advise --format json` as a dict, e.g. advise("meta-llama/Llama-2-13b-hf", 20000, top=5)."""
    return _run("advise", {"model": model, "budget": budget, **options})


def estimate(model: str, gpu: str, **options: Any) -> dict[str, Any]:
    """`expert estimate --format json` as a dict, e.g. estimate("70b", "h100-sxm", count=2, precision="fp8")."""
    return _run("estimate", {"model": model, "gpu": gpu, **options})
