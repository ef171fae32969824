"""Rendering: the advice view model through templates/*.j2 (text, markdown, html) or as JSON."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..core.cachedir import cache_subdir, read_entry, write_entry
from ..core.errors import TemplateError
from ..core.paths import data_dir

FORMATS = ("text", "markdown", "html", "json")
# Feasible options an HTML report plots (cost vs capacity) and lists when `--top` is not given.
HTML_TOP = 15


def default_top(fmt: str, top: int | None) -> int | None:
    """`--top` as given, or HTML_TOP for an HTML report (its charts plot the feasible options)."""
    return top if top else (HTML_TOP if fmt == "html" else None)


def _fmt_num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def _fmt_money(v: Any) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


# Characters that start Markdown markup (emphasis, code, links, HTML, tables, headings) inside a line.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&#!])")


def _md_escape(v: Any) -> str:
    """A name from the data as literal Markdown text: markup characters backslash-escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(v).split()))


def _compile_signature(env: Any) -> str:
    """Everything that changes the code Jinja compiles a template to: part of every bytecode cache key."""
    import jinja2

    return repr((jinja2.__version__, env.autoescape, env.trim_blocks, env.lstrip_blocks, env.keep_trailing_newline,
                 env.newline_sequence, env.optimized, env.block_start_string, env.variable_start_string,
                 env.comment_start_string, env.line_statement_prefix, env.undefined.__name__))


def _bytecode_cache(flavor: str, directory: Path):
    """Compiled templates cached per user, in the checked cache directory (core/cachedir.py).

    Jinja's FileSystemBytecodeCache reads pickle and marshal from any file in its directory and keys by
    template name only, so an HTML run could reuse code compiled without autoescape. This one keys by the
    template and everything that shapes its compiled code, stores the source checksum as text (no pickle),
    and reads marshal data only from entries that pass the cache's ownership and hash checks."""
    import marshal

    from jinja2.bccache import BytecodeCache, bc_magic

    class VerifiedBytecodeCache(BytecodeCache):
        def get_cache_key(self, name: str, filename: str | None = None) -> str:
            return hashlib.sha256(f"{flavor}\0{name}\0{filename}".encode()).hexdigest()

        def load_bytecode(self, bucket: Any) -> None:
            payload = read_entry(directory, f"{bucket.key}.jinja")
            if payload is None:
                return
            header, sep, code = payload.partition(b"\n")
            if not sep or header != bc_magic.hex().encode() + b" " + bucket.checksum.encode():
                return
            try:
                bucket.code = marshal.loads(code)
            except (EOFError, ValueError, TypeError):
                bucket.reset()

        def dump_bytecode(self, bucket: Any) -> None:
            header = bc_magic.hex().encode() + b" " + bucket.checksum.encode()
            write_entry(directory, f"{bucket.key}.jinja", header + b"\n" + marshal.dumps(bucket.code))

    return VerifiedBytecodeCache()


@functools.lru_cache(maxsize=16)
def _env_for(fmt: str, templates: str, cache: str | None):
    # Imported here: rendering-only dependencies stay off the start-up path of other commands.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(templates), undefined=StrictUndefined, autoescape=fmt == "html",
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    if cache is not None:
        env.bytecode_cache = _bytecode_cache(f"{fmt}:{_compile_signature(env)}", Path(cache))
    env.filters["num"] = _fmt_num
    env.filters["money"] = _fmt_money
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v * 100:.0f} %"
    env.filters["gib"] = lambda v: "n/a" if v is None else f"{v:,.1f} GiB"
    # `md` marks a name from the data; only Markdown output needs it escaped (HTML autoescapes).
    env.filters["md"] = _md_escape if fmt == "markdown" else (lambda v: v)
    return env


def _env(fmt: str):
    """One environment per output format (and per templates and cache directory), built once per process."""
    cache = cache_subdir("jinja")
    return _env_for(fmt, str(data_dir("templates")), None if cache is None else str(cache))


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
        if fmt == "html" and template == "advice":
            from .charts import MISSING_NOTE, charts

            doc = {**doc, "charts": charts(doc), "charts_note": MISSING_NOTE}
        tmpl = _env(fmt).get_template(name)
        return tmpl.render(**doc)
    except Exception as exc:  # noqa: BLE001 - any template failure is reported as one line
        raise TemplateError(f"templates/{name}: {type(exc).__name__}: {exc}") from None
