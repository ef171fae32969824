"""Where the data directories are: next to the package in a checkout, inside it once installed."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`facts`, `rules` or `templates`: the installed copy (expert/<name>) or the checkout's top level."""
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return _PKG.parent / name
