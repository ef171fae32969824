"""Stage 2. The user's request: parsed, validated and resolved against the catalogs (the first stage)."""

from __future__ import annotations

import difflib
import math
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Catalog, Model
from .catalog.hf_config import model_from_config
from .core.errors import InputError
from .core.workloads import WORKLOADS

DEPLOYMENTS = ("workstation", "datacenter")
DEFAULT_CONTEXT = 4096
# Tokens a run processes when --tokens is not given: a typical instruction-tuning set for
# fine-tuning, Llama 2's 2T-token pre-training corpus for training (Touvron et al. 2023).
DEFAULT_TOKENS = {"lora": 1e8, "qlora": 1e8, "finetune": 1e8, "training": 2e12}


@dataclass(frozen=True)
class Request:
    model: Model
    model_note: str | None
    budget: float
    currency: str
    workload: str = "inference"
    precision: str = "auto"
    context: int = DEFAULT_CONTEXT
    batch: int = 1
    tokens: float | None = None
    region: str = "global"
    electricity_per_kwh: float = 0.0
    electricity_note: str = ""
    hours_per_day: float = 24.0
    years: float = 3.0
    deployment: str = "datacenter"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.id,
            "model_note": self.model_note,
            "budget": self.budget,
            "currency": self.currency,
            "workload": self.workload,
            "precision": self.precision,
            "context": self.context,
            "batch": self.batch,
            "tokens": self.tokens,
            "region": self.region,
            "electricity_per_kwh": self.electricity_per_kwh,
            "hours_per_day": self.hours_per_day,
            "years": self.years,
            "deployment": self.deployment,
        }


def closest(name: str, choices: list[str], n: int = 3) -> str:
    hits = difflib.get_close_matches(name.lower(), choices, n=n, cutoff=0.4)
    return ", ".join(hits) if hits else ", ".join(sorted(choices)[:n])


_THOUSANDS = re.compile(r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?\s*[kKmMbBgGtT]?")
# Longest --model shown back in a message, and the largest config.json read (real ones are a few KiB).
_SHOWN_CHARS = 80
MAX_CONFIG_BYTES = 4 * 2**20


def _shown(text: Any) -> str:
    """A value as quoted in an error message: repr (so control characters show as escapes), shortened."""
    s = repr(str(text))
    return s if len(s) <= _SHOWN_CHARS else s[:_SHOWN_CHARS - 4] + "...'"


def parse_number(text: str | float | int, what: str, *, allow_zero: bool = False) -> float:
    """A finite, positive number; `2T`, `500M`, `20k` suffixes are accepted."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip().replace("_", "")
        if "," in s:
            # Commas only as thousands separators: '20.000,50' (a European 20,000.50) must not read as 20.
            if not _THOUSANDS.fullmatch(s):
                raise InputError(f"{what}: {_shown(text)} is not a number: commas may only separate thousands "
                                 "(groups of 3 digits, e.g. 20,000 or 20,000.50)")
            s = s.replace(",", "")
        m = re.fullmatch(r"([-+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)", s)
        if not m:
            raise InputError(f"{what}: {text!r} is not a number (expected e.g. 20000, 2.5, 20k, 2T)")
        scale = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}[m.group(2).lower()]
        value = float(m.group(1)) * scale
    if not math.isfinite(value):
        raise InputError(f"{what}: {text!r} is not a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{what}: must be greater than 0, got {text!r}")
    return value


def resolve_precision(cat: Catalog, name: str) -> str:
    """A precision id from an id or alias in any case (F16, BF16, Q4_K_M, AWQ, MXFP4), or `auto`."""
    key = str(name).strip().lower()
    if key == "auto" or key in cat.precisions:
        return key
    for p in cat.precisions.values():
        if key in p.aliases:
            return p.id
    names = list(cat.precisions) + [a for p in cat.precisions.values() for a in p.aliases]
    raise InputError(f"--precision: unknown precision {name!r}; closest: {closest(key, names)} (or auto)")


def resolve_model(cat: Catalog, name: str) -> tuple[Model, str | None]:
    """A catalog id, a size shorthand (documented default) or a path to a Hugging Face config.json."""
    raw = name.strip()
    key = raw.lower()
    if key in cat.models:
        return cat.models[key], None
    if key in cat.shorthands:
        model = cat.models[cat.shorthands[key]]
        return model, f"'{raw}' resolved to {model.id} ({model.name}), the documented default for that size"
    if not raw:
        raise InputError("--model: empty; expected a model id, a size shorthand (7b, 13b, 70b...) "
                         "or a config.json path")
    p = Path(raw)
    shown = raw if raw.isprintable() and len(raw) <= _SHOWN_CHARS else _shown(raw)
    try:
        is_path = raw.endswith(".json") or p.exists()
        if p.is_dir():
            p = p / "config.json"
        st = p.stat() if is_path and p.exists() else None
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise InputError(f"--model {_shown(raw)}: not a model id, and not a readable path "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    if is_path:
        if st is None:
            raise InputError(f"--model {shown}: no such file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"--model {p}: not a regular file (expected a Hugging Face config.json)")
        if st.st_size > MAX_CONFIG_BYTES:
            raise InputError(f"--model {p}: {st.st_size:,} bytes is too large for a config.json "
                             f"(at most {MAX_CONFIG_BYTES:,})")
        model = model_from_config(p)
        return model, f"architecture read from {p}"
    normal = re.sub(r"[\s_]+", "-", key).replace("llama2", "llama-2").replace("llama3", "llama-3")
    if normal in cat.models:
        return cat.models[normal], None
    choices = sorted(cat.models) + sorted(cat.shorthands)
    raise InputError(f"--model: unknown model {_shown(raw)}; closest: {closest(key[:200], choices)} "
                     f"(see `expert catalog models`, or pass a config.json path)")


def build_request(cat: Catalog, *, model: str, budget: Any, currency: str = "USD", workload: str = "inference",
                  precision: str = "auto", context: Any = None, batch: Any = 1, tokens: Any = None,
                  region: str = "global", electricity: Any = None, hours_per_day: Any = 24, years: Any = 3,
                  deployment: str | None = None) -> Request:
    """Validate every field and fill the documented defaults; raises InputError with one clear line."""
    currency = str(currency).upper()
    if currency not in cat.energy.currencies:
        raise InputError(f"--currency: unknown currency {currency!r}; allowed: {', '.join(cat.energy.currencies)}")
    region = str(region).lower()
    if region not in cat.energy.regions:
        raise InputError(f"--region: unknown region {region!r}; allowed: {', '.join(cat.energy.regions)}")
    workload = str(workload).lower()
    if workload not in WORKLOADS:
        raise InputError(f"--workload: unknown workload {workload!r}; allowed: {', '.join(WORKLOADS)}")
    precision = resolve_precision(cat, precision)
    m, note = resolve_model(cat, model)
    budget_v = parse_number(budget, "--budget")
    if context is None:
        ctx = min(DEFAULT_CONTEXT, m.max_context)
    else:
        ctx_f = parse_number(context, "--context")
        if ctx_f != int(ctx_f):
            raise InputError(f"--context: must be a whole number of tokens, got {context!r}")
        ctx = int(ctx_f)
        if ctx > m.max_context:
            raise InputError(f"--context: {ctx} tokens is beyond {m.id}'s maximum of {m.max_context}")
    batch_f = parse_number(batch, "--batch")
    if batch_f != int(batch_f) or batch_f > 4096:
        raise InputError(f"--batch: must be a whole number from 1 to 4096, got {batch!r}")
    tokens_v = parse_number(tokens, "--tokens") if tokens is not None else DEFAULT_TOKENS.get(workload)
    hours = parse_number(hours_per_day, "--hours-per-day")
    if hours > 24:
        raise InputError(f"--hours-per-day: at most 24, got {hours_per_day!r}")
    years_v = parse_number(years, "--years")
    if years_v > 20:
        raise InputError(f"--years: at most 20, got {years!r}")
    reg = cat.energy.regions[region]
    rate = cat.energy.currencies[currency] / cat.energy.currencies[reg["currency"]]
    if electricity is None:
        price = reg["electricity_per_kwh"] * rate
        enote = (f"{reg['electricity_per_kwh']:g} {reg['currency']}/kWh ({reg['name']}, {reg['date']})"
                 + (f" = {price:.3f} {currency}/kWh" if currency != reg["currency"] else ""))
    else:
        price = parse_number(electricity, "--electricity", allow_zero=True)
        if price > 10 * max(1.0, cat.energy.currencies[currency]):
            raise InputError(f"--electricity: {electricity!r} {currency}/kWh is implausibly high")
        enote = f"{price:g} {currency}/kWh (given)"
    if deployment is None:
        deployment = "workstation" if WORKLOADS[workload].desk_side else "datacenter"
    if deployment not in DEPLOYMENTS:
        raise InputError(f"--deployment: unknown deployment {deployment!r}; allowed: {', '.join(DEPLOYMENTS)}")
    return Request(model=m, model_note=note, budget=budget_v, currency=currency, workload=workload,
                   precision=precision, context=ctx, batch=int(batch_f), tokens=tokens_v, region=region,
                   electricity_per_kwh=price, electricity_note=enote, hours_per_day=hours, years=years_v,
                   deployment=deployment)

