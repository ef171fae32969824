"""Rendering: the advice view model through templates/*.j2 (text, markdown, html) or as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .core.errors import TemplateError
from .core.paths import data_dir

FORMATS = ("text", "markdown", "html", "json")


def _fmt_num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def _fmt_money(v: Any) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def _bytecode_cache():
    """Compiled templates cached per user (keyed by template source); none if the cache is unwritable."""
    from jinja2 import FileSystemBytecodeCache

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpu-expert" / "jinja"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError:
        return None
    return FileSystemBytecodeCache(str(base))


def _env(autoescape: bool):
    # Imported here: rendering-only dependencies stay off the start-up path of other commands.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(data_dir("templates"))), undefined=StrictUndefined,
                      autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      bytecode_cache=_bytecode_cache())
    env.filters["num"] = _fmt_num
    env.filters["money"] = _fmt_money
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v * 100:.0f} %"
    env.filters["gib"] = lambda v: "n/a" if v is None else f"{v:,.1f} GiB"
    return env


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render(doc: dict[str, Any], fmt: str, template: str = "advice") -> str:
    """Render a view model; `fmt` is text, markdown, html or json."""
    if fmt == "json":
        return to_json(doc)
    if fmt not in FORMATS:
        raise TemplateError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    ext = {"text": "txt", "markdown": "md", "html": "html"}[fmt]
    name = f"{template}.{ext}.j2"
    try:
        tmpl = _env(autoescape=(fmt == "html")).get_template(name)
        return tmpl.render(**doc)
    except Exception as exc:  # noqa: BLE001 - any template failure is reported as one line
        raise TemplateError(f"templates/{name}: {type(exc).__name__}: {exc}") from None
