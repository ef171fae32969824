"""`expert compare CONFIG CONFIG [CONFIG]`: configurations side by side, for the same request as `advise`."""

from __future__ import annotations

from typing import Any

import click

from ..core.errors import InputError
from .requestopts import request_kwargs, request_params

COMPARE_HELP = """Compare 2 or 3 configurations side by side for the same request options as `advise`.

CONFIG is COUNTxGPU@PRECISION (count 1 and the request's precision when left out; ids in any case).
Each is costed and judged exactly as `advise` does: capex with the platform, what it delivers at the
requirement, cost per million tokens (or days to train), memory per GPU, and the rules that reject it.

"""


def register(cli: click.Group, advise: click.Command, data_options: Any, load: Any, emit: Any) -> None:
    @click.argument("configs", nargs=-1, required=True, metavar="CONFIG CONFIG [CONFIG]")
    @click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json"]))
    @click.option("--output", default=None, help="Write to this file instead of standard output.")
    @data_options
    def compare(configs: tuple[str, ...], fmt: str, output: str | None, **values: Any) -> None:
        from ..decide.compare import compare as run_compare
        from ..render import render
        from ..request import build_request

        if not 2 <= len(configs) <= 3:
            raise InputError(f"compare: give 2 or 3 configurations, got {len(configs)} (e.g. 2xh100-sxm@fp8 l40s)")
        cat, rules = load()
        req = build_request(cat, **request_kwargs(values))
        doc = run_compare(cat, rules, req, list(configs))
        text = render(doc, fmt, template="compare")
        if fmt == "text":  # the padded columns leave trailing spaces
            text = "\n".join(line.rstrip() for line in text.split("\n"))
        emit(text, output)

    cmd = click.command("compare", help=COMPARE_HELP)(compare)
    cmd.params[:0] = request_params(advise)
    cli.add_command(cmd)
