"""Where the data directories are: next to the package in a checkout, inside it once installed."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent.parent  # the `expert` package


ENV = {"facts": "GPU_EXPERT_FACTS", "rules": "GPU_EXPERT_RULES"}


def data_dir(name: str) -> Path:
    """`facts`, `rules` or `templates`: $GPU_EXPERT_FACTS / $GPU_EXPERT_RULES when set (a team's own
    catalog or rule set), else the installed copy (expert/resources/<name>) or the checkout's top level."""
    override = os.environ.get(ENV.get(name, ""), "")
    if override:
        return Path(override)
    for candidate in (_PKG / "resources" / name, _PKG.parent / name):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return _PKG.parent / name
