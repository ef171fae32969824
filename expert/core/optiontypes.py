"""Typed option values for every command: `--help` lists what an option takes and shell completion offers it.

`Listed` names the allowed values (fixed ones, or ids read only when --help or completion asks); `Number`
states a numeric option's unit and range. Both pass the text through unchanged: the command validates it,
so the one-line messages, case-insensitive ids, size suffixes (`20k`, `8K`) and `--facts-dir` catalogs
behave as they always have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.shell_completion import CompletionItem

MAX_LISTED = 30  # longer lists show a name in --help (completion still offers every value)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class Listed(click.ParamType):
    name = "text"

    def __init__(self, values: Sequence[str] | Callable[[], Sequence[str]], name: str | None = None,
                 multiple: bool = False) -> None:
        self._values = values
        self._name = name
        self.multiple = multiple  # a comma-separated list (--only a,b): completion continues after the comma

    def values(self) -> list[str]:
        try:
            vals = self._values() if callable(self._values) else self._values
        except Exception:  # noqa: BLE001 - help and completion never fail on a broken catalog
            return []
        return [_CONTROL.sub("", str(v)) for v in vals]

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        vals = self.values()
        if self._name and (len(vals) > MAX_LISTED or not vals):
            return self._name + (",..." if self.multiple else "")
        shown = "|".join(vals)
        return f"[{shown}]" + (",..." if self.multiple else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        head, _, last = incomplete.rpartition(",") if self.multiple else ("", "", incomplete)
        prefix = head + "," if head else ""
        return [CompletionItem(prefix + v) for v in self.values() if v.lower().startswith(last.lower())]


class Number(click.ParamType):
    """A number as text (the request builder parses suffixes and checks the range); --help shows both."""

    name = "number"

    def __init__(self, metavar: str) -> None:
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str | None:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value
