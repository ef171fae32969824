"""Colour for the one-screen text summary: only on a terminal, and never with NO_COLOR set (no-color.org)."""

from __future__ import annotations

import os
import re
import sys

import click

_COLOURS = {"RECOMMENDATION": "green", "NO CONFIGURATION FITS": "red", "NO CONFIGURATION WORKS": "red",
            "GOOD / BETTER / BEST": None, "REJECTED": None, "RISKS": "yellow"}
_HEADING = re.compile(r"^(" + "|".join(re.escape(h) for h in _COLOURS) + r"|TOP \d+ RANKED)\b")


def wants_colour(output: str | None, stream=None) -> bool:
    stream = stream or sys.stdout
    if output or "NO_COLOR" in os.environ:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def colourize(text: str, output: str | None = None, force: bool | None = None) -> str:
    """Headings bold, the pick green, a missed budget red, risks yellow; unchanged when colour is off."""
    if not (wants_colour(output) if force is None else force):
        return text
    from .streams import strip_controls

    out = []
    for line in text.splitlines(keepends=True):
        line = strip_controls(line)  # the data loses its control characters before the colours go in
        m = _HEADING.match(line)
        if m:
            colour = _COLOURS.get(m.group(1))
            body, nl = line.rstrip("\n"), "\n" if line.endswith("\n") else ""
            line = click.style(body[: m.end()], fg=colour, bold=True) + body[m.end():] + nl
        out.append(line)
    return "".join(out)
