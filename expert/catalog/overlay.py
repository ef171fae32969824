"""A team's own prices over the packaged catalog (`--prices FILE`): gpu id -> price fields, validated."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..core.errors import FactError, InputError, located
from ..core.schema import Field, validate
from ..core.yamlio import load_yaml_file, plain
from .model import Catalog

PRICE_SPEC = {
    "usd": Field("num", min=50, max=10_000_000),
    "cny": Field("num", required=False, nullable=True, min=300, max=100_000_000),
    "date": Field("any"),
    "condition": Field("str", choices=("new", "used", "system-share")),
    "source": Field("str", required=False),  # where the team's price came from (a quote, an invoice)
}


def apply_prices(cat: Catalog, path: Path) -> Catalog:
    """The catalog with each listed GPU's price replaced; unknown GPU ids and bad fields are errors."""
    name = str(path)
    if not path.is_file():
        raise InputError(f"--prices {path}: no such file")
    doc = load_yaml_file(path, name)
    prices = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(prices, dict) or not prices:
        raise FactError(located(name, 1, "", "expected a top-level 'prices:' mapping of gpu id -> price fields"))
    gpus = dict(cat.gpus)
    for gid, entry in prices.items():
        if gid not in gpus:
            raise FactError(located(name, prices.line_of(gid), f"gpu {gid}", "unknown GPU id (see `expert catalog "
                                    "gpus`)"))
        validate(entry, PRICE_SPEC, file=name, entry=f"gpu {gid}", error=FactError)
        e = plain(entry)
        g = gpus[gid]
        gpus[gid] = dataclasses.replace(
            g, price_usd=float(e["usd"]), price_cny=None if e.get("cny") is None else float(e["cny"]),
            price_date=str(e["date"]), price_condition=e["condition"],
        )
    return dataclasses.replace(cat, gpus=gpus)
