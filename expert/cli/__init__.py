"""Command line: `expert advise | estimate | catalog | rules | audit`.

Every ExpertError (and every click usage error) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..core.errors import ExpertError, InputError
from . import types as T
from .types import Listed, Number

EXIT_BAD_INPUT = 2


class _Group(click.Group):
    """Turn click's multi-line usage errors into the one-line form every other error takes."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        import os

        if os.environ.get("_EXPERT_COMPLETE"):  # shell completion: click writes the script or the candidates
            return super().main(*args, **kwargs)
        from .streams import guarded

        return guarded(lambda: self._main(*args, **kwargs), EXIT_BAD_INPUT)

    def _main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        argv = list(args[0] if args and args[0] is not None else kwargs.get("args") or sys.argv[1:])
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("expert: aborted", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx else "expert"
            _fail(argv, cmd, exc.format_message())
        except click.ClickException as exc:
            _fail(argv, "expert", exc.format_message())
        except ExpertError as exc:
            _fail(argv, "expert", str(exc))
        if isinstance(rv, int) and rv:
            sys.exit(rv)
        return rv


def _wants_json(argv: list[str]) -> bool:
    """`--format json` (or `--format=json`) on the command line: errors are then a JSON object too."""
    argv = [str(a) for a in argv]
    return any(a == "--format=json" or (a == "--format" and i + 1 < len(argv) and argv[i + 1] == "json")
               for i, a in enumerate(argv))


def _fail(argv: list[str], cmd: str, message: str) -> None:
    """One line on stderr and exit status 2: `CMD: error: MESSAGE`, or {"error", "schema_version"} for JSON."""
    if _wants_json(argv):
        import json

        from ..core.docschema import SCHEMA_VERSION

        click.echo(json.dumps({"error": message, "schema_version": SCHEMA_VERSION}, ensure_ascii=False), err=True)
    else:
        click.echo(f"{cmd}: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def WORKLOADS_TRAIN(workload: str) -> bool:  # noqa: N802 - reads as a predicate on the workload table
    from ..core.workloads import WORKLOADS

    w = WORKLOADS.get(workload)  # an unknown workload is build_request's to name (with the allowed ones)
    return bool(w and w.trains)


# --facts-dir / --prices of the running command (set by the options' callbacks, read by _load).
_DATA: dict[str, str | None] = {"facts_dir": None, "prices": None}


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    _DATA[param.name or ""] = value


def _data_options(f: Any) -> Any:
    """--facts-dir DIR (a whole catalog directory in place of the packaged facts/) and --prices FILE (a team's
    own prices over it); both validated like the packaged catalog."""
    f = click.option("--prices", "prices", default=None, expose_value=False, callback=_remember,
                     type=click.Path(), metavar="FILE",
                     help="YAML file 'prices: {gpu-id: {usd, cny, date, condition}}' over the catalog's prices.")(f)
    return click.option("--facts-dir", "facts_dir", default=None, expose_value=False, callback=_remember,
                        type=click.Path(), metavar="DIR",
                        help="Directory of catalog files (gpus.yaml, models.yaml, ...) used instead of facts/.")(f)


def _load():
    from ..store import load_all

    facts = _DATA.get("facts_dir")
    if facts and not Path(facts).is_dir():
        raise InputError(f"--facts-dir {facts}: no such directory")
    cat, rules = load_all(Path(facts) if facts else None)
    if _DATA.get("prices"):
        from ..catalog.overlay import apply_prices

        cat = apply_prices(cat, Path(str(_DATA["prices"])))
    return cat, rules


def _emit(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--output {output}: cannot write: {exc.strerror}") from None
    else:
        click.echo(text, nl=False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpu-expert", prog_name="expert")
def cli() -> None:
    """gpu-expert: which GPU(s) to buy or rent for Llama-family LLMs, and why."""


@cli.command()
@click.option("--budget", required=True, type=Number("MONEY"),
              help="Money available for the system, e.g. 20000 or 20k (> 0, in --currency).")
@click.option("--model", required=True, type=T.MODEL,
              help="Catalog id, size shorthand (7b, 13b, 70b...), Hugging Face repo id or a config.json path "
                   "(ids: `expert catalog models`).")
@click.option("--workload", default="inference", show_default=True, type=T.WORKLOAD, help="What the GPUs do.")
@click.option("--precision", default="auto", show_default=True, type=T.PRECISION,
              help="Weight format; auto picks the best quality that meets the requirement.")
@click.option("--context", default=None, type=Number("TOKENS"),
              help="Tokens each sequence keeps in the KV cache, e.g. 8K = 8,192: every concurrent user is sized at "
                   "this length (a conversation's history, the worst case); omit it to size each user for prompt + "
                   "answer (at least 4,096). Training: the sequence length (default 4,096).")
@click.option("--users", default=None, type=Number("N"),
              help="Concurrent users to serve, >= 1 (default: by workload and deployment, rules/policy.yaml).")
@click.option("--prompt-tokens", default=None, type=Number("TOKENS"),
              help="Prompt tokens per request (default 1024; dev 3584).")
@click.option("--output-tokens", default=None, type=Number("TOKENS"), help="Output tokens per request (default 512).")
@click.option("--min-tokens-per-s", default=None, type=Number("TOK/S"),
              help="Decode speed floor per user, tokens/s > 0 (default 10).")
@click.option("--ttft", default=None, type=Number("SECONDS"),
              help="Time-to-first-token target in seconds > 0 (default 2 datacenter, 5 desk-side).")
@click.option("--batch", default=None, type=Number("N"),
              help="Training: micro-batch per GPU. Serving: the older name of --users.")
@click.option("--tokens", default=None, type=Number("TOKENS"),
              help="Tokens to train on, e.g. 100M or 2T (default 100M fine-tuning, 2T training).")
@click.option("--deadline", default=None, type=Number("DAYS"),
              help="Days a fine-tuning or training run may take, > 0 (default 3-7 / 90).")
@click.option("--currency", default="USD", show_default=True, type=T.CURRENCY, help="Currency of every amount.")
@click.option("--region", default="global", show_default=True, type=T.REGION,
              help="Where the system runs (export rules, electricity, prices).")
@click.option("--domicile", default=None, type=T.REGION,
              help="Where the buying company is based, for licence terms that follow the licensee (Llama 4's EU "
                   "clause) (default: --region).")
@click.option("--electricity", default=None, type=Number("PRICE"),
              help="Electricity price per kWh in --currency, >= 0 (default: the region's).")
@click.option("--hours-per-day", default="24", show_default=True, type=Number("HOURS"),
              help="Hours per day the GPUs run, 0 < h <= 24.")
@click.option("--years", default="3", show_default=True, type=Number("YEARS"),
              help="Years of ownership for the TCO, 0 < y <= 20.")
@click.option("--deployment", default=None, type=T.DEPLOYMENT,
              help="Default: inferred from the workload and budget, and stated.")
@click.option("--stack", "stacks", default=None, type=T.STACKS,
              help="Software stacks to weigh, e.g. cuda or cuda,rocm (default: what the workload's tools target).")
@click.option("--max-desk-cards", default=None, type=Number("N"),
              help="Consumer cards a desk-side build may take, >= 1 (default 2).")
@click.option("--condition", default="any", show_default=True, type=T.CONDITION,
              help="new: no used or refurbished parts.")
@click.option("--engine", "engine", default="auto", show_default=True, type=T.ENGINE,
              help="Serving engine; auto: llama.cpp for GGUF and Apple, vLLM otherwise.")
@click.option("--top", default=None, type=click.IntRange(1, 1000), metavar="N",
              help="Also list the first N feasible options in rank order (text and JSON).")
@click.option("--only", "only", default=None, type=T.GPUS,
              help="Weigh only these GPU ids (comma-separated, any case), e.g. h100-sxm,l40s.")
@click.option("--exclude", "exclude", default=None, type=T.GPUS,
              help="Leave these GPU ids out of the candidate pool (comma-separated, any case).")
@click.option("--why-not", "why_not", default=None, type=T.GPU, help="Explain why a GPU id was not picked.")
@click.option("--verbose", "-v", "verbose", is_flag=True,
              help="Text: the full reasoning (every rule that fired, memory, power, all rejections) instead of the "
                   "one-screen summary.")
@click.option("--format", "fmt", default="text", show_default=True, type=T.ADVISE_FORMAT,
              help="html: a self-contained report with charts (needs the html extra: matplotlib).")
@click.option("--output", default=None, type=click.Path(), metavar="FILE",
              help="Write to this file instead of standard output.")
@_data_options
def advise(budget: str, model: str, workload: str, precision: str, context: str | None, users: str | None,
           prompt_tokens: str | None, output_tokens: str | None, min_tokens_per_s: str | None, ttft: str | None,
           batch: str | None, tokens: str | None, deadline: str | None, currency: str, region: str,
           electricity: str | None, hours_per_day: str, years: str, deployment: str | None, stacks: str | None,
           max_desk_cards: str | None, condition: str, engine: str, domicile: str | None, top: int | None,
           only: str | None,
           exclude: str | None, why_not: str | None, verbose: bool, fmt: str, output: str | None) -> None:
    """Rank GPU configurations for a model and budget, and explain the pick."""
    from ..render import FORMATS

    if fmt not in FORMATS:
        raise InputError(f"--format: unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    from ..decide.advice import advise as run_advice
    from ..request import build_request, resolve_gpu
    from .requestopts import gpu_pool

    cat, rules = _load()
    req = build_request(cat, model=model, budget=budget, currency=currency, workload=workload,
                        precision=precision, context=context, batch=batch, tokens=tokens, region=region,
                        electricity=electricity, hours_per_day=hours_per_day, years=years, deployment=deployment,
                        users=users, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                        min_tokens_per_s=min_tokens_per_s, ttft=ttft, deadline=deadline, stacks=stacks,
                        max_desk_cards=max_desk_cards, condition=condition, engine=engine, domicile=domicile)
    if why_not is not None:
        why_not = resolve_gpu(cat, why_not, "--why-not")
    result = run_advice(cat, rules, req, gpus=gpu_pool(cat, only, exclude))
    from ..render import default_top, render

    doc = result.to_dict(detail=fmt == "json", top=default_top(fmt, top))

    if why_not:
        doc["why_not"] = {"gpu": why_not, "candidates": result.why_not(why_not)}
        _emit(render(doc, fmt, template="whynot"), output)
        return
    if fmt == "text" and not verbose:
        from .colour import colourize, wants_colour

        text = render(doc, fmt, template="summary")
        if wants_colour(output):
            from .streams import write_styled

            write_styled(colourize(text, force=True))
        else:
            _emit(text, output)
        return
    _emit(render(doc, fmt), output)


@cli.command()
@click.option("--model", required=True, type=T.MODEL,
              help="Catalog id, size shorthand, Hugging Face repo id or config.json path.")
@click.option("--gpu", required=True, type=T.GPU, help="GPU id, any case (see `expert catalog gpus`).")
@click.option("--count", default="1", show_default=True, type=Number("N"), help="Number of GPUs, 1-100000.")
@click.option("--precision", default="fp16", show_default=True, type=T.CONCRETE_PRECISION)
@click.option("--workload", default="inference", show_default=True, type=T.WORKLOAD)
@click.option("--context", default=None, type=Number("TOKENS"),
              help="Tokens in the KV cache, e.g. 8K = 8,192 (default 4096 or the model max).")
@click.option("--batch", default="1", show_default=True, type=Number("N"))
@click.option("--currency", default="USD", show_default=True, type=T.CURRENCY)
@click.option("--region", default="global", show_default=True, type=T.REGION)
@click.option("--electricity", default=None, type=Number("PRICE"), help="Electricity price per kWh in --currency.")
@click.option("--deployment", default=None, type=T.DEPLOYMENT, help="Sets the PUE.")
@click.option("--engine", default="auto", show_default=True, type=T.ENGINE,
              help="auto: llama.cpp for GGUF precisions and Apple GPUs, vLLM for other inference, PyTorch for "
                   "training.")
@click.option("--kv-cache", "kv_cache", default="auto", show_default=True, type=T.KV_CACHE,
              help="KV cache type (auto: 16-bit).")
@click.option("--max-context", "max_ctx", is_flag=True, help="Also report the longest context that fits.")
@click.option("--users", default=None, type=Number("N|max"),
              help="Serving: concurrent requests (continuous batching); 'max' = saturation.")
@click.option("--prompt-tokens", "prompt_tokens", default="512", show_default=True, type=Number("TOKENS"),
              help="Serving: prompt length.")
@click.option("--output-tokens", "output_tokens", default="256", show_default=True, type=Number("TOKENS"),
              help="Serving: output length.")
@click.option("--tokens", default=None, type=Number("TOKENS"),
              help="Training: tokens to train on (2T, 1B): adds days, GPU-hours and cost.")
@click.option("--format", "fmt", default="text", show_default=True, type=T.TEXT_JSON)
@_data_options
def estimate(model: str, gpu: str, count: str, precision: str, workload: str, context: str | None, batch: str,
             currency: str, region: str, electricity: str | None, deployment: str | None, engine: str,
             kv_cache: str, max_ctx: bool, users: str | None, prompt_tokens: str, output_tokens: str,
             tokens: str | None, fmt: str) -> None:
    """Memory, throughput and power of one configuration."""
    from ..estimate import Config
    from ..estimate import estimate as run_estimate
    from ..render import render
    from ..request import build_request, parse_number, parse_tokens, resolve_gpu, resolve_precision

    if fmt not in ("text", "json"):
        raise InputError(f"--format: unknown format {fmt!r}; allowed: text, json")
    from ..estimate import ENGINES, KV_CACHE_BYTES

    if engine not in ("auto", *ENGINES):
        raise InputError(f"--engine: unknown engine {engine!r}; allowed: auto, {', '.join(ENGINES)}")
    kv_types = ("fp16", "fp8", "q8_0", "q4_0")
    if kv_cache != "auto" and (kv_cache not in kv_types or kv_cache not in KV_CACHE_BYTES):
        raise InputError(f"--kv-cache: unknown KV cache type {kv_cache!r}; allowed: auto, {', '.join(kv_types)}")
    cat, _ = _load()
    gpu = resolve_gpu(cat, gpu, "--gpu")
    if resolve_precision(cat, precision) == "auto":  # any spelling of it (Auto, AUTO)
        raise InputError("--precision: estimate needs a concrete precision (fp16, bf16, fp8, int8, int4, q4_k_m...)")
    n = parse_number(count, "--count")
    if n != int(n) or n > 100000:
        raise InputError(f"--count: must be a whole number of GPUs, got {count!r}")
    from ..core.workloads import WORKLOADS

    if workload in WORKLOADS and deployment is None:
        # One configuration, no budget: the deployment (and so the PUE) follows the workload and the part: a
        # consumer, workstation or Apple part is a desk-side box whatever the workload.
        desk_part = cat.gpus[gpu].segment in ("consumer", "workstation", "apple")
        deployment = "workstation" if WORKLOADS[workload].desk_side or desk_part else "datacenter"
    # The rules that judge this configuration (warn_rejections below) see the requirement given here: the token
    # count of a run, the users and their prompts; not the workload's defaults.
    asked: dict[str, Any] = {}
    if tokens is not None and WORKLOADS_TRAIN(workload):
        asked["tokens"] = tokens
    if users not in (None, "max") and not WORKLOADS_TRAIN(workload):
        asked.update(users=users, prompt_tokens=prompt_tokens, output_tokens=output_tokens)
    base: dict[str, Any] = dict(model=model, budget=1, currency=currency, workload=workload, precision=precision,
                                context=context, batch=batch, region=region, electricity=electricity,
                                deployment=deployment, default_context=4096)
    req = build_request(cat, **base)
    judged = build_request(cat, **base, **asked) if asked else req
    pue = cat.energy.pue["datacenter" if req.deployment == "datacenter" else "workstation"]
    cfg = Config(model=req.model, gpu=cat.gpus[gpu], count=int(n), precision=cat.precisions[req.precision],
                 workload=req.workload, context=req.context, batch=req.batch,
                 electricity_per_kwh=req.electricity_per_kwh, currency=req.currency, pue=pue,
                 engine=None if engine == "auto" else engine, kv_cache=None if kv_cache == "auto" else kv_cache,
                 deployment=req.deployment)
    result = run_estimate(cat, cfg)
    est = result.to_dict()
    plan = None
    if WORKLOADS_TRAIN(req.workload):
        from ..estimate.plan import format_plan, plan_training

        n_tokens = parse_number(tokens, "--tokens") if tokens is not None else None
        plan = plan_training(cat, cfg, n_tokens)
        est["plan"] = plan.to_dict()
    elif tokens is not None:
        raise InputError("--tokens: only training workloads (lora, qlora, finetune, training) take a token count")
    if max_ctx:
        from ..estimate import fits_context, max_context

        est["max_context"] = max_context(cat, cfg, fits_context(cat, cfg, result.engine))
    if users is not None:
        from ..estimate import serve

        n_users = None if users == "max" else int(parse_number(users, "--users"))
        p_tok = int(parse_tokens(prompt_tokens, "--prompt-tokens"))
        o_tok = int(parse_tokens(output_tokens, "--output-tokens"))
        if WORKLOADS_TRAIN(req.workload):
            raise InputError("--users: serving is modelled for inference workloads only")
        sv = serve(cat, cfg, n_users, p_tok, o_tok)
        est["serving"] = sv.to_dict()
        from ..estimate import figure_range

        est["serving"]["range"] = figure_range(cat, "serving_tokens_per_s", cfg, sv.engine, sv.total_tps)
    if req.model_note:
        est["assumptions"].insert(0, req.model_note)
    from .verdicts import warn_rejections

    est["rejected_by"] = warn_rejections(judged, gpu, int(n))
    doc = {"estimate": est, "gpu_name": cat.gpus[gpu].name, "model_name": req.model.name,
           "currency": req.currency, "electricity_note": req.electricity_note}
    if fmt == "json":
        from ..core.docschema import SCHEMA_VERSION
        from ..render import to_json

        click.echo(to_json({"schema_version": SCHEMA_VERSION, "currency": req.currency, **est}), nl=False)
    else:
        click.echo(render(doc, "text", template="estimate"), nl=False)
        if plan is not None:
            click.echo(format_plan(plan, req.currency))


@cli.command()
@click.argument("what", type=Listed(("gpus", "models", "precisions")))
@click.option("--format", "fmt", default="text", show_default=True, type=T.TEXT_JSON)
@_data_options
def catalog(what: str, fmt: str) -> None:
    """List the fact catalogs: gpus, models or precisions."""
    from ..render import to_json

    cat, _ = _load()
    if what not in ("gpus", "models", "precisions"):
        raise InputError(f"catalog: unknown catalog {what!r}; allowed: gpus, models, precisions")
    rows: list[dict[str, Any]] = []
    def num(v: float | None, width: int, fmt: str = ".1f") -> str:
        # A value the catalog does not know prints as "unknown", never as 0.
        return f"{v:{width}{fmt}}" if v is not None else f"{'unknown':>{width}}"

    if what == "gpus":
        for g in cat.gpus.values():
            rows.append({"id": g.id, "name": g.name, "architecture": g.architecture, "memory_gib": g.memory_gib,
                         "usable_memory_gib": g.usable_memory_gib, "memory_type": g.memory_type,
                         "bandwidth_gbs": g.bandwidth_gbs, "bf16_tflops": g.tflops_bf16, "fp8_tflops": g.tflops_fp8,
                         "board_power_w": g.board_power_w, "nvlink": g.nvlink, "p2p": g.p2p,
                         "link": {"kind": g.link_kind, "gbs": g.link_gbs, "max_gpus": g.link_max_gpus},
                         "availability": g.availability, "availability_date": g.availability_date,
                         "sold_in": {"unit": g.sold_in, "gpus": g.gpus_per_unit},
                         "price_usd": g.price_usd, "price_cny": g.price_cny, "price_date": g.price_date,
                         "price_condition": g.price_condition, "counts": list(g.counts)})
        header = (f"{'id':22} {'architecture':12} {'GiB':>5} {'usable':>6} {'memory':8} {'GB/s':>6} {'BF16 TF':>8} "
                  f"{'FP8 TF':>8} {'W':>5} {'link':16} {'availability':13} {'USD':>9} {'condition':12} price date")
        lines = []
        for r in rows:
            lk = r["link"]
            link = lk["kind"] + (f" {lk['gbs']:g}" if lk["gbs"] else "")
            lines.append(f"{r['id']:22} {r['architecture']:12} {r['memory_gib']:5g} {r['usable_memory_gib']:6g} "
                         f"{r['memory_type']:8} {r['bandwidth_gbs']:6g} {num(r['bf16_tflops'], 8)} "
                         f"{num(r['fp8_tflops'], 8)} {r['board_power_w']:5g} {link:16} {r['availability']:13} "
                         f"{r['price_usd']:9,.0f} {r['price_condition']:12} {r['price_date']}")
        from ..catalog import source_report

        lines += ["", source_report(cat).line()]
    elif what == "models":
        for m in cat.models.values():
            rows.append({"id": m.id, "name": m.name, "params": m.params, "layers": m.layers, "hidden": m.hidden_size,
                         "heads": m.attention_heads, "kv_heads": m.kv_heads, "max_context": m.max_context,
                         "experts": m.experts, "active_params": m.active_params,
                         "local_attention": m.local_attention
                         and f"{m.local_layers}x{m.local_attention} {m.local_window}",
                         "licence": m.licence})
        header = (f"{'id':30} {'params':>8} {'active':>8} {'layers':>6} {'heads':>5} {'kv':>3} {'context':>8} "
                  f"{'local attention':20} licence")
        lines = [f"{r['id']:30} {r['params'] / 1e9:7.2f}B {r['active_params'] / 1e9:7.2f}B {r['layers']:6} "
                 f"{r['heads']:5} {r['kv_heads']:3} {r['max_context']:8} {r['local_attention'] or '-':20} "
                 f"{r['licence']}" for r in rows]
        lines.append("")
        lines.append("size shorthands: " + ", ".join(f"{k} -> {v}" for k, v in cat.shorthands.items()))
    else:
        for p in cat.precisions.values():
            rows.append({"id": p.id, "name": p.name, "bits_per_weight": p.bits_per_weight, "compute": p.compute,
                         "requires": list(p.requires), "engines": list(p.engines), "quality": p.quality,
                         "quality_text": p.quality_text})
        header = f"{'id':8} {'bits':>6} {'compute':7} {'needs':8} {'quality':10} engines"
        lines = [f"{r['id']:8} {r['bits_per_weight']:6.3g} {r['compute']:7} {','.join(r['requires']) or '-':8} "
                 f"{r['quality']:10} {', '.join(r['engines'])}" for r in rows]
    if fmt == "json":
        click.echo(to_json({what: rows}), nl=False)
    elif fmt == "text":
        click.echo("\n".join([header, *lines]))
    else:
        raise InputError(f"--format: unknown format {fmt!r}; allowed: text, json")


def _register() -> None:
    from ..governance.commands import register
    from . import compare, sweep

    register(cli)
    compare.register(cli, advise, _data_options, _load, _emit)
    sweep.register(cli, advise, _data_options, _load, _emit)
    from .examples import add_examples

    add_examples(cli)


_register()


def main() -> None:
    cli.main(prog_name="expert")


if __name__ == "__main__":
    main()
