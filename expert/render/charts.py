"""Charts for the HTML report: matplotlib figures rendered to inline SVG, from the advice view model only.

Every number plotted is read from the document `Advice.to_dict` returns (memory per option, system cost,
TCO, capacity, rent per hour, score factors); nothing is re-estimated here. matplotlib is an optional
extra (`pip install 'gpu-expert[html]'`), imported only when an HTML report renders; without it the
report renders with a one-line note in place of the charts.

The SVG is deterministic (fixed hash salt, bundled font, text kept as text, no date or creator in the
metadata), so the rendered golden files are stable across runs and machines with the same matplotlib.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from typing import Any

MISSING_NOTE = ("Charts need matplotlib, which is not installed: pip install 'gpu-expert[html]' "
                "(the tables below carry the same numbers).")

# Colour-blind-safe palette (Okabe-Ito), fixed so the charts read the same in every report.
COLOURS = {"weights": "#0072B2", "kv_cache": "#E69F00", "activations": "#009E73", "other": "#CC79A7",
           "headroom": "#E5E5E5", "pick": "#D55E00", "option": "#0072B2", "feasible": "#999999",
           "gpus": "#0072B2", "platform": "#56B4E9", "energy": "#E69F00", "hosting": "#CC79A7"}
LINE_COLOURS = ["#D55E00", "#0072B2", "#009E73", "#CC79A7"]
FACTOR_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
# The SVG names the font its layout was measured with; a browser without it falls back to a close match.
FONT_STACK = "'DejaVu Sans', 'Bitstream Vera Sans', Verdana, Arial, sans-serif"

_RC = {
    "svg.hashsalt": "gpu-expert",
    "svg.fonttype": "none",  # text stays text: smaller, searchable, and independent of glyph outlines
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same metrics on every machine
    "font.size": 9.0,
    "text.parse_math": False,  # a `$` in a GPU name is text, never TeX
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "path.simplify": False,
}

_CACHE: dict[str, dict[str, str] | None] = {}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _presented(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The options the report presents, one entry per distinct system: (short label, option dict)."""
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for o in doc.get("options") or []:
        roles, _ = out.setdefault(o["system"], ([], o))
        roles.append(o["role"])
    cob = doc.get("cheapest_over_budget")
    if cob and cob["system"] not in out:
        out[cob["system"]] = (["cheapest over budget"], cob)
    return [(f"{' / '.join(roles)}: {system}", o) for system, (roles, o) in out.items()]


def _is_pick(doc: dict[str, Any], o: dict[str, Any]) -> bool:
    shown = doc.get("recommendation") or doc.get("cheapest_over_budget")
    return bool(shown) and o["system"] == shown["system"] and o["precision"] == shown["precision"]


def chart_data(doc: dict[str, Any]) -> dict[str, Any]:
    """What the four charts plot, read from the view model (also the cache key of the rendered SVG)."""
    req = doc["request"]
    trains = doc["requirement"].get("deadline_days") is not None
    options = []
    for label, o in _presented(doc):
        m = o["estimate"]["memory_gib"]
        options.append({
            "label": label, "pick": _is_pick(doc, o), "memory": m, "capex": o["capex"], "tco": o["tco"],
            "gpu_capex": o["gpu_capex"], "platform_capex": o["platform_capex"],
            "energy_per_year": o["energy_cost_per_year"], "hosting_per_year": o["hosting_per_year"],
            "rent_per_hour": (o.get("rent") or {}).get("per_hour"), "rent_total": (o.get("rent") or {}).get("total"),
            "score": o["score"], "factors": o["score_factors"]})
    ranked = doc.get("top") or doc.get("options") or []
    if doc.get("cheapest_over_budget") and not doc.get("recommendation"):
        ranked = [*ranked, doc["cheapest_over_budget"]]
    points, seen = [], set()
    for o in ranked:
        key = (o["system"], o["precision"])
        x = o.get("train_days") if trains else (o.get("sizing") or {}).get("users_capacity")
        if key in seen or x is None:
            continue
        seen.add(key)
        points.append({"label": o["system"], "x": x, "y": o["capex"], "pick": _is_pick(doc, o)})
    return {"currency": doc["currency"], "years": req["years"], "hours_per_day": req["hours_per_day"],
            "budget": req["budget"], "trains": trains, "requirement": doc["requirement"], "options": options,
            "points": points, "presented": "the pick" if doc.get("recommendation") else "the cheapest that works"}


def charts(doc: dict[str, Any]) -> dict[str, str] | None:
    """{name: inline SVG} for the HTML report, or None when matplotlib is not installed."""
    data = chart_data(doc)
    key = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    if key not in _CACHE:
        _CACHE[key] = _render_all(data) if available() else None
        if len(_CACHE) > 64:
            _CACHE.pop(next(iter(_CACHE)))
    return _CACHE[key]


def _render_all(data: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        return {"memory": _svg(_memory(data)), "capacity": _svg(_capacity(data)),
                "buy_rent": _svg(_buy_rent(data)), "score": _svg(_score(data)), "cost": _svg(_cost(data))}


def _figure(height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, height), dpi=72, layout="constrained")
    return fig, fig.subplots(1, ncols) if ncols > 1 else fig.subplots()


_XML_HEAD = re.compile(r"\A.*?(?=<svg)", re.S)


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    # Inline in HTML: no XML declaration or DOCTYPE, and a width that follows the page.
    svg = _XML_HEAD.sub("", buf.getvalue(), count=1).replace("font-family: 'DejaVu Sans'", f"font-family: {FONT_STACK}")
    return re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1width="100%"', svg, count=1).strip()


def _short(label: str, n: int = 48) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _money(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.{0 if v % 1e6 == 0 else 1}f} M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:,.{0 if v % 1e3 == 0 else 1}f} k"
    return f"{v:,.0f}"


def _empty(fig: Any, ax: Any) -> Any:
    ax.text(0.5, 0.5, "no option to chart", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _stacked(ax: Any, opts: list[dict[str, Any]], labels: list[str],
             series: list[tuple[str, str, list[float]]]) -> None:
    """Horizontal stacked bars, one row per option (the pick's label in bold), top row first."""
    left = [0.0] * len(opts)
    for key, name, widths in series:
        ax.barh(range(len(opts)), widths, left=left, color=COLOURS[key], label=name, height=0.6,
                edgecolor="#FFFFFF", linewidth=0.5)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(range(len(opts)), labels)
    for i, o in enumerate(opts):
        if o["pick"]:
            ax.get_yticklabels()[i].set_fontweight("bold")
    ax.invert_yaxis()


def _memory(data: dict[str, Any]):
    """Per-GPU memory of each option: weights, KV cache, activations, the rest, and the headroom left."""
    opts = data["options"]
    fig, ax = _figure(0.9 + 0.45 * max(len(opts), 1))
    if not opts:
        return _empty(fig, ax)
    labels = [_short(o["label"]) for o in opts]
    parts = [("weights", "weights"), ("kv_cache", "KV cache"), ("activations", "activations"),
             ("other", "gradients, optimizer, overhead"), ("headroom", "headroom")]

    def width(o: dict[str, Any], key: str) -> float:
        m = o["memory"]
        share = m["per_gpu"] / m["total"] if m["total"] else 0.0
        if key == "headroom":
            return max(m["headroom_per_gpu"], 0.0)
        if key == "other":
            return (m["gradients"] + m["optimizer"] + m["overhead"]) * share
        return m[key] * share

    _stacked(ax, opts, labels, [(key, name, [width(o, key) for o in opts]) for key, name in parts])
    ax.set_xlabel("GiB per GPU")
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside lower center", ncols=5, fontsize=8)
    return fig


def _capacity(data: dict[str, Any]):
    """System cost against what it delivers (users served, or days to train), the pick highlighted."""
    pts, cur, trains = data["points"], data["currency"], data["trains"]
    fig, ax = _figure(3.4)
    if not pts:
        ax.text(0.5, 0.5, "no feasible option to chart", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    others = [p for p in pts if not p["pick"]]
    if others:
        ax.scatter([p["x"] for p in others], [p["y"] for p in others], s=28, color=COLOURS["feasible"],
                   label="other feasible options", zorder=2)
    xs = [p["x"] for p in pts]
    mid = (min(xs) + max(xs)) / 2
    for p in pts:
        if p["pick"]:
            ax.scatter([p["x"]], [p["y"]], s=110, marker="*", color=COLOURS["pick"], label=data["presented"],
                       zorder=3)
            right = p["x"] > mid
            ax.annotate(_short(p["label"], 40), (p["x"], p["y"]), textcoords="offset points",
                        xytext=(-8 if right else 8, 6), ha="right" if right else "left", color=COLOURS["pick"],
                        fontweight="bold")
    req = data["requirement"]
    if trains and req.get("deadline_days"):
        ax.axvline(req["deadline_days"], color="#555555", linestyle="--", linewidth=1,
                   label=f"deadline ({req['deadline_days']:g} days)")
    elif not trains and req.get("users"):
        ax.axvline(req["users"], color="#555555", linestyle="--", linewidth=1,
                   label=f"requirement ({req['users']:,} users)")
    if any(p["y"] <= data["budget"] * 1.5 for p in pts) and data["budget"] > 1:
        ax.axhline(data["budget"], color="#009E73", linestyle=":", linewidth=1,
                   label=f"budget ({_money(data['budget'])} {cur})")
    ax.set_xlabel("days to train (fewer is better)" if trains else "users served at the requirement (more is better)")
    ax.set_ylabel(f"system cost ({cur})")
    ax.yaxis.set_major_formatter(_money_formatter())
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    return fig


def _money_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: _money(v))


def _buy_rent(data: dict[str, Any]):
    """Cumulative cost over the years of ownership: buying (price, then energy and hosting) against renting the
    same GPUs for the same hours a day."""
    years, hours, cur = data["years"], data["hours_per_day"], data["currency"]
    fig, ax = _figure(3.6)
    opts = data["options"]
    if not opts:
        return _empty(fig, ax)
    months = [i * years * 12 / 48 for i in range(49)]
    rentable = False
    for colour, o in zip(LINE_COLOURS, opts, strict=False):
        name = _short(o["label"], 40)
        running = (o["tco"] - o["capex"]) / years if years else 0.0
        ax.plot(months, [o["capex"] + running * m / 12 for m in months], color=colour, linewidth=2.2 if o["pick"]
                else 1.4, label=f"buy {name}")
        if o["rent_per_hour"] is not None:
            rentable = True
            ax.plot(months, [o["rent_per_hour"] * hours * 365 * m / 12 for m in months], color=colour,
                    linestyle="--", linewidth=2.2 if o["pick"] else 1.4, label=f"rent {name}")
    if not rentable:
        ax.text(0.99, 0.04, "no sourced rental price for these GPUs", ha="right", transform=ax.transAxes,
                color="#555555")
    ax.set_xlabel("months")
    ax.set_ylabel(f"cumulative cost ({cur})")
    ax.set_xlim(0, years * 12)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(_money_formatter())
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    return fig


def _score(data: dict[str, Any]):
    """The score of each option as its factor multipliers (1 = neutral; the score is 100 x their product)."""
    opts = data["options"]
    fig, ax = _figure(0.9 + 0.55 * max(len(opts), 1))
    factors = sorted({f for o in opts for f in o["factors"]})
    if not opts or not factors:
        ax.text(0.5, 0.5, "no soft rule moved the score of any option", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    labels = [_short(o["label"]) for o in opts]
    height = 0.8 / len(factors)
    for j, f in enumerate(factors):
        ys = [i - 0.4 + height * (j + 0.5) for i in range(len(opts))]
        ax.barh(ys, [o["factors"].get(f, 1.0) - 1.0 for o in opts], left=1.0, height=height,
                color=FACTOR_COLOURS[j % len(FACTOR_COLOURS)], label=f.replace("_", " "))
    ax.axvline(1.0, color="#333333", linewidth=0.8)
    ax.set_yticks(range(len(opts)), labels)
    for i, o in enumerate(opts):
        if o["pick"]:
            ax.get_yticklabels()[i].set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlabel("multiplier on the score (1 = neutral)")
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside lower center", ncols=min(len(factors), 6), fontsize=8)
    return fig


def _cost(data: dict[str, Any]):
    """The cost of ownership of each option by item: GPUs, platform, energy and hosting over the years."""
    opts, years, cur = data["options"], data["years"], data["currency"]
    fig, ax = _figure(0.9 + 0.45 * max(len(opts), 1))
    if not opts:
        return _empty(fig, ax)
    labels = [_short(o["label"]) for o in opts]
    items = [("gpus", "GPUs", lambda o: o["gpu_capex"]), ("platform", "platform", lambda o: o["platform_capex"]),
             ("energy", f"energy ({years:g} years)", lambda o: o["energy_per_year"] * years),
             ("hosting", f"hosting ({years:g} years)", lambda o: o["hosting_per_year"] * years)]
    _stacked(ax, opts, labels, [(key, name, [value(o) for o in opts]) for key, name, value in items])
    ax.set_xlabel(f"cost of ownership over {years:g} years ({cur})")
    ax.xaxis.set_major_formatter(_money_formatter())
    ax.grid(axis="y", visible=False)
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    return fig
