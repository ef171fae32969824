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
from .core.policy import Policy, load_policy
from .core.workloads import WORKLOADS

DEPLOYMENTS = ("workstation", "datacenter")
DEFAULT_CONTEXT = 4096


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
    deployment_note: str = "given"
    # The demand sized for (serving and development): concurrent users, their prompt and output lengths,
    # the per-user decode speed floor and the time-to-first-token target.
    users: int = 1
    prompt_tokens: int = 1024
    output_tokens: int = 512
    min_tokens_per_s: float = 0.0
    ttft_s: float = 0.0
    # Training and fine-tuning: the run must finish within this many days (given by the user, or the default).
    deadline_days: float = 0.0
    deadline_given: bool = False
    requirement_note: str = "given"
    stacks: tuple[str, ...] = ("cuda", "rocm", "metal")
    max_desk_cards: int = 2
    condition: str = "any"  # new: used and refurbished parts are not weighed
    engine: str | None = None  # inference engine for serving and development (None: the default per GPU)
    # Where the buyer (the licensee) is based, for licence terms that follow the company, not the machine (Llama
    # 4's EU clause); the region the system runs in unless said otherwise.
    domicile: str = "global"

    def requirement(self) -> dict[str, Any]:
        """What was sized for, in the units the output prints."""
        if WORKLOADS[self.workload].trains:
            return {"tokens": self.tokens, "deadline_days": self.deadline_days, "basis": self.requirement_note}
        return {"users": self.users, "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                "min_tokens_per_s": self.min_tokens_per_s, "ttft_s": self.ttft_s, "basis": self.requirement_note}

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
            "domicile": self.domicile,
            "electricity_per_kwh": self.electricity_per_kwh,
            "hours_per_day": self.hours_per_day,
            "years": self.years,
            "deployment": self.deployment,
            "deployment_note": self.deployment_note,
            "requirement": self.requirement(),
            "stacks": list(self.stacks),
            "max_desk_cards": self.max_desk_cards,
            "condition": self.condition,
            "engine": self.engine or "auto",
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


# Token counts as the engines read them (vLLM's --max-model-len, human_readable_int): an upper-case K/M/G is
# binary (8K = 8,192, 128K = 131,072), a lower-case k/m/g decimal (8k = 8,000). Money and token totals
# (--budget, --tokens) stay decimal.
_TOKEN_SUFFIX = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([KMG])\s*")
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30}


def parse_tokens(text: str | float | int, what: str) -> float:
    """A token count for a context-like option: 8K = 8,192 (binary, upper case), 8k = 8,000, or a number."""
    if isinstance(text, str):
        m = _TOKEN_SUFFIX.fullmatch(text.replace("_", ""))
        if m:
            return parse_number(float(m.group(1)) * _BINARY[m.group(2)], what)
    return parse_number(text, what)


def resolve_gpu(cat: Catalog, name: str, what: str = "--gpu") -> str:
    """A catalog GPU id in any case, with surrounding spaces or underscores for dashes (H100-SXM, rtx_4090)."""
    key = str(name).strip().lower()
    if key in cat.gpus:
        return key
    normal = re.sub(r"[\s_]+", "-", key)
    if normal in cat.gpus:
        return normal
    raise InputError(f"{what}: unknown GPU {_shown(name)}; closest: {closest(key[:200], list(cat.gpus))} "
                     "(see `expert catalog gpus`)")


def resolve_gpus(cat: Catalog, names: str | list[str] | tuple[str, ...], what: str) -> list[str]:
    """A comma-separated list (or several) of GPU ids, each resolved as resolve_gpu does, order kept."""
    items = [names] if isinstance(names, str) else list(names)
    out = [resolve_gpu(cat, x, what) for item in items for x in str(item).split(",") if x.strip()]
    if not out:
        raise InputError(f"{what}: give one or more GPU ids, e.g. h100-sxm,l40s (see `expert catalog gpus`)")
    return list(dict.fromkeys(out))


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
    by_repo = {m.hf_repo.lower(): m for m in cat.models.values() if m.hf_repo}
    if key in by_repo:
        model = by_repo[key]
        return model, f"'{raw}' resolved to {model.id} ({model.name}) by its Hugging Face id in the catalog"
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
    if re.fullmatch(r"[\w.-]+/[\w.-]+", raw):
        # Looks like a Hugging Face repo id: resolved offline, so one not in the catalog needs its config.json.
        repo_hits = difflib.get_close_matches(key, list(by_repo), n=3, cutoff=0.4)
        names = ", ".join(by_repo[h].hf_repo or h for h in repo_hits) or closest(key, sorted(cat.models))
        raise InputError(f"--model: Hugging Face repo {_shown(raw)} is not in the catalog (resolved offline); "
                         f"pass its config.json (--model path/to/config.json); closest: {names}")
    choices = sorted(cat.models) + sorted(cat.shorthands)
    raise InputError(f"--model: unknown model {_shown(raw)}; closest: {closest(key[:200], choices)} "
                     f"(see `expert catalog models`, or pass a config.json path)")


def _whole(value: Any, what: str, lo: int, hi: int, *, tokens: bool = False) -> int:
    v = parse_tokens(value, what) if tokens else parse_number(value, what)
    if v != int(v) or not lo <= v <= hi:
        raise InputError(f"{what}: must be a whole number from {lo} to {hi:,}, got {value!r}")
    return int(v)


def _longer_context_models(cat: Catalog, m, need: int) -> str:
    """Up to three models whose context holds `need` tokens: its family first, then Llama, then any; nearest size."""
    fits = [x for x in cat.models.values() if x.max_context >= need and not x.id.startswith("custom")]
    fits.sort(key=lambda x: (x.family != m.family, not x.id.startswith("llama"), abs(x.params - m.params)))
    return ", ".join(f"{x.id}: {x.max_context:,}" for x in fits[:3]) or "none in the catalog"


def build_request(cat: Catalog, *, model: str, budget: Any, currency: str = "USD", workload: str = "inference",
                  precision: str = "auto", context: Any = None, batch: Any = None, tokens: Any = None,
                  region: str = "global", electricity: Any = None, hours_per_day: Any = 24, years: Any = 3,
                  deployment: str | None = None, users: Any = None, prompt_tokens: Any = None,
                  output_tokens: Any = None, min_tokens_per_s: Any = None, ttft: Any = None,
                  deadline: Any = None, stacks: Any = None, max_desk_cards: Any = None,
                  policy: Policy | None = None, default_context: int | None = None, condition: str = "any",
                  engine: str | None = None, domicile: str | None = None) -> Request:
    """Validate every field and fill the documented defaults (rules/policy.yaml); raises InputError with one
    clear line. The requirement sized for is explicit: given, or the policy's default for the workload and
    deployment, and the request says which."""
    pol = policy or load_policy()
    currency = str(currency).upper()
    if currency not in cat.energy.currencies:
        raise InputError(f"--currency: unknown currency {currency!r}; allowed: {', '.join(cat.energy.currencies)}")
    region = str(region).lower()
    if region not in cat.energy.regions:
        raise InputError(f"--region: unknown region {region!r}; allowed: {', '.join(cat.energy.regions)}")
    domicile_v = region if domicile in (None, "") else str(domicile).lower()
    if domicile_v not in cat.energy.regions:
        raise InputError(f"--domicile: unknown region {domicile!r}; allowed: {', '.join(cat.energy.regions)}")
    workload = str(workload).lower()
    if workload not in WORKLOADS:
        raise InputError(f"--workload: unknown workload {workload!r}; allowed: {', '.join(WORKLOADS)}")
    wl = WORKLOADS[workload]
    precision = resolve_precision(cat, precision)
    m, note = resolve_model(cat, model)
    budget_v = parse_number(budget, "--budget")
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

    # Deployment: given, or inferred from the workload and the budget (stated in the output).
    budget_usd = budget_v / cat.energy.currencies[currency]
    if deployment is None:
        if workload in pol.workstation_workloads and budget_usd < pol.workstation_workloads_below_usd:
            deployment, dnote = "workstation", f"inferred: {wl.title} is usually a desk-side build"
        elif workload in pol.workstation_workloads:
            deployment = "datacenter"
            dnote = (f"inferred: {wl.title} is usually a desk-side build, but a budget of "
                     f"{pol.workstation_workloads_below_usd:,.0f} USD or more is a rack budget "
                     "(--deployment workstation to override)")
        elif budget_usd < pol.workstation_below_usd:
            deployment = "workstation"
            dnote = (f"inferred: a budget under {pol.workstation_below_usd:,.0f} USD is sized as one desk-side "
                     "machine, not a rack (--deployment datacenter to override)")
        else:
            deployment, dnote = "datacenter", "inferred: the workload and budget call for a rack deployment"
    else:
        deployment, dnote = str(deployment).lower(), "given"
    if deployment not in DEPLOYMENTS:
        raise InputError(f"--deployment: unknown deployment {deployment!r}; allowed: {', '.join(DEPLOYMENTS)}")

    # The requirement: the user's numbers where given, the policy's default otherwise.
    default = pol.requirement(workload, deployment)
    given: list[str] = []

    def pick(value: Any, key: str, conv):
        if value is None:
            return default[key]
        given.append(key)
        return conv(value)

    kw: dict[str, Any] = {}
    if wl.trains:
        tokens_v = pick(tokens, "tokens", lambda v: parse_number(v, "--tokens"))
        deadline_v = pick(deadline, "deadline_days", lambda v: parse_number(v, "--deadline"))
        batch_v = _whole(batch, "--batch", 1, 4096) if batch is not None else 1
        kw.update(tokens=float(tokens_v), deadline_days=float(deadline_v), deadline_given=deadline is not None)
        if context is None:
            ctx = min(DEFAULT_CONTEXT, m.max_context)
        else:
            ctx = _whole(context, "--context", 1, 10**8, tokens=True)
    else:
        if users is None and batch is not None:
            # --batch is the older name of concurrent sequences
            users_v = pick(batch, "users", lambda v: _whole(v, "--batch", 1, 100000))
        else:
            users_v = pick(users, "users", lambda v: _whole(v, "--users", 1, 100000))
        out_v = pick(output_tokens, "output_tokens", lambda v: _whole(v, "--output-tokens", 1, 10**7, tokens=True))
        prompt_v = pick(prompt_tokens, "prompt_tokens", lambda v: _whole(v, "--prompt-tokens", 1, 10**8, tokens=True))
        if prompt_v + out_v > m.max_context and {"prompt_tokens", "output_tokens"} & set(given):
            # A request no deployment can serve: the model itself stops at its context window.
            raise InputError(f"--prompt-tokens/--output-tokens: {prompt_v:,} + {out_v:,} tokens per request exceed "
                             f"{m.id}'s maximum context of {m.max_context:,} tokens; shorten them or pick a model "
                             f"with a longer context ({_longer_context_models(cat, m, prompt_v + out_v)})")
        if context is not None:
            # The KV length each sequence keeps; the prompt (new tokens per request) stays as given or default.
            ctx = max(_whole(context, "--context", 1, 10**8, tokens=True), 1)
            if prompt_v + out_v > ctx and {"prompt_tokens", "output_tokens"} & set(given):
                raise InputError(f"--context: {ctx:,} tokens cannot hold a {prompt_v:,}-token prompt and a "
                                 f"{out_v:,}-token answer; give --context of at least {prompt_v + out_v:,}")
            prompt_v = min(prompt_v, max(1, ctx - out_v))
        elif default_context:
            ctx = min(default_context, m.max_context)  # `estimate` sizes the KV cache for a stated context
        else:
            ctx = min(max(prompt_v + out_v, default.get("context_tokens", 0)), m.max_context)
        speed = pick(min_tokens_per_s, "min_tokens_per_s", lambda v: parse_number(v, "--min-tokens-per-s"))
        ttft_v = pick(ttft, "ttft_s", lambda v: parse_number(v, "--ttft"))
        batch_v = users_v
        kw.update(users=users_v, prompt_tokens=prompt_v, output_tokens=out_v, min_tokens_per_s=float(speed),
                  ttft_s=float(ttft_v), tokens=None)
    if ctx > m.max_context:
        raise InputError(f"--context: {ctx} tokens is beyond {m.id}'s maximum of {m.max_context}")
    if given:
        rnote = "given: " + ", ".join(given) + ("" if set(given) >= set(default) - {"context_tokens"} else
                                              f"; the rest is the default for {wl.title} on a {deployment}")
    else:
        rnote = f"default for {wl.title} on a {deployment} (rules/policy.yaml): " + pol.requirement_basis(workload)

    if stacks is None:
        stacks_v = pol.stacks(workload)
    else:
        stacks_v = tuple(x.strip().lower() for x in str(stacks).split(",") if x.strip())
        if not stacks_v:
            raise InputError("--stack: give one or more software stacks, e.g. cuda or cuda,rocm")
        known = sorted({g.stack for g in cat.gpus.values()})
        bad = [x for x in stacks_v if x not in known]
        if bad:
            raise InputError(f"--stack: unknown stack {bad[0]!r}; allowed: {', '.join(known)}")
    cards = pol.max_consumer_cards if max_desk_cards is None else _whole(max_desk_cards, "--max-desk-cards", 1, 16)
    condition = str(condition).lower()
    if condition not in ("any", "new"):
        raise InputError(f"--condition: unknown condition {condition!r}; allowed: any, new")
    engines = tuple(cat.efficiency.get("engines", {}))
    engine_v = None if engine in (None, "", "auto") else str(engine).lower()
    if engine_v is not None and engine_v not in engines:
        raise InputError(f"--engine: unknown engine {engine!r}; allowed: auto, {', '.join(engines)}")
    return Request(model=m, model_note=note, budget=budget_v, currency=currency, workload=workload,
                   precision=precision, context=ctx, batch=batch_v, region=region,
                   electricity_per_kwh=price, electricity_note=enote, hours_per_day=hours, years=years_v,
                   deployment=deployment, deployment_note=dnote, requirement_note=rnote, stacks=stacks_v,
                   max_desk_cards=cards, condition=condition, engine=engine_v, domicile=domicile_v, **kw)

