"""Serving at a load: continuous batching of `users` concurrent requests of P prompt and O output tokens.

One engine step decodes one token for every running sequence and, with chunked prefill, processes the
prompt tokens of arriving requests alongside: in steady state P/O prompt tokens ride along with each output
token. The step reads the weights once plus every sequence's KV cache (memory-bound regime) and computes
2 x N_active FLOPs per processed token plus attention (compute-bound regime); the slower of the two sets
the step time. Concurrency is capped by the KV cache that fits next to the weights and by the engine's
maximum batch; users beyond that queue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..catalog import Catalog
from .config import GIB, Config
from .decode import stepper
from .engines import constant, engine_efficiency, engine_info, pick_engine
from .memo import SERVING
from .memory import cached_tokens, estimate_memory, kv_bytes_per_token


@dataclass(frozen=True)
class Serving:
    users: int | None  # concurrent requests asked for; None: saturation (requests fed at an infinite rate)
    prompt_tokens: int
    output_tokens: int
    engine: str
    running: int  # sequences in the batch: min(users, max_users_fitting, engine max batch)
    total_tps: float  # output tokens/s over all users
    per_user_tps: float  # decode speed one user sees (tokens/s), queueing included
    ttft_s: float  # time to first token of one request at this load
    saturation_tps: float  # output tokens/s with the batch as large as memory and engine allow
    max_users_fitting: int  # sequences of P + O tokens whose KV cache fits next to the weights
    regime: str  # memory-bound | compute-bound at this load
    saturation_regime: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _rater(cat: Catalog, cfg: Config, engine: str, parallelism: str, p: int, o: int, kv: int):
    """`batch -> (output tokens/s, step seconds, regime)` of continuous batching at this configuration."""
    d = engine_efficiency(cat, "decode", engine, cfg.gpu)
    mfu = engine_efficiency(cat, "prefill", engine, cfg.gpu)["mfu"]
    # Each output token carries P/O prompt tokens of newly admitted requests (chunked prefill).
    per_seq = 1 + p / o
    # On average a sequence has its context minus half its answer cached while it decodes.
    step_at = stepper(cat, cfg, d, parallelism, kv - o / 2, compute_fraction=mfu)

    def rate(batch: int) -> tuple[float, float, str]:
        step, _, t_mem, t_c = step_at(batch, batch * per_seq)
        return batch / step, step, "memory-bound" if t_mem >= t_c else "compute-bound"

    return rate


def serve(cat: Catalog, cfg: Config, users: int | None, prompt_tokens: int, output_tokens: int,
          context: int | None = None, keep: bool = True) -> Serving:
    """Throughput, per-user speed and time to first token of `users` concurrent requests (None: saturation).
    Memoised per process (memo.py); the returned Serving is shared. `keep=False` computes it without keeping it
    (a caller that keeps its own result, as sizing does, would only fill the table with one entry per load); the
    load-independent capacity is kept either way."""
    if not keep:
        return _serve(cat, cfg, users, prompt_tokens, output_tokens, context)
    return SERVING.get(cat, cfg, ("serve", users, prompt_tokens, output_tokens, context),
                       lambda: _serve(cat, cfg, users, prompt_tokens, output_tokens, context))


def _capacity(cat: Catalog, cfg: Config, p: int, o: int, context: int | None) -> tuple:
    """What does not depend on the load: the engine, KV length, how many sequences fit, the saturation rate
    and the prefill time of one prompt. Memoised apart from `serve`, which sizing asks at many loads."""
    engine = cfg.engine or pick_engine(cfg.gpu, cfg.precision, cfg.workload)
    # `context`: the KV length each sequence keeps (a chat's history), when longer than its prompt and answer;
    # the prompt is what is new and prefilled per request.
    kv = max(int(context or 0), p + o)
    mem = estimate_memory(cat, cfg.but(context=kv, batch=1), engine, None)
    b = mem.breakdown
    n = cfg.count
    # Engines pre-allocate a share of GPU memory (vLLM gpu_memory_utilization, TensorRT-LLM free-memory fraction)
    # and fill what the weights and activations leave with KV blocks.
    pool = (b["available_per_gpu"] * constant(cat, "serving_memory_fraction") - b["overhead"] / n) * n
    free = pool - b["weights"] - b["activations"]
    kv_seq = kv_bytes_per_token(cfg.model, cfg.precision, cfg.kv_cache) * cached_tokens(cfg.model, kv) / GIB
    fitting = max(0, int(free // kv_seq)) if kv_seq > 0 else 0
    cap = int(engine_info(cat, engine).get("max_batch", 256))
    sat_batch = max(1, min(fitting, cap))
    rate = _rater(cat, cfg, engine, mem.parallelism, p, o, kv)
    sat = rate(sat_batch)
    # First token: the request's prompt in one prefill pass (its FLOPs at the prefill MFU, or one weight
    # stream, whichever is slower), then one decode step; plus the wait for a free slot when users queue.
    g = cfg.gpu
    peak = (g.peak_tflops(cfg.precision.compute) or g.tflops_fp16 or 1.0) * 1e12 * n
    mfu = engine_efficiency(cat, "prefill", engine, g)["mfu"]
    bw = g.bandwidth_gbs * 1e9 * engine_efficiency(cat, "decode", engine, g)["bandwidth_fraction"] * n
    m = cfg.model
    flops = p * (2 * m.active_params + 2 * m.layers * p * m.attention_heads * m.head_dim)
    prefill_s = max(flops / (peak * mfu), b["weights"] * GIB / bw)
    return engine, kv, mem.parallelism, fitting, sat_batch, sat, prefill_s, rate


def _capacity_of(cat: Catalog, cfg: Config, p: int, o: int, context: int | None) -> tuple:
    return SERVING.get(cat, cfg, ("capacity", p, o, context), lambda: _capacity(cat, cfg, p, o, context))


def _at(cap: tuple, o: int, users: int | None) -> tuple[int, float, float, float, str]:
    """(sequences running, output tokens/s in all, per user, time to first token, regime) of `users`
    concurrent requests on a configuration's capacity (_capacity; None: saturation)."""
    _, _, _, _, sat_batch, sat, prefill_s, rate = cap
    running = sat_batch if users is None else max(1, min(int(users), sat_batch))
    total, step, regime = sat if running == sat_batch else rate(running)
    asked = running if users is None else max(int(users), 1)
    queue_s = max(0, asked - running) / max(running, 1) * o * step
    return running, total, total / asked, prefill_s + step + queue_s, regime


def load_curve(cat: Catalog, cfg: Config, prompt_tokens: int, output_tokens: int, context: int | None = None):
    """(sequences that fit, `users -> (output tokens/s in all, per user, time to first token)`): the figures
    serve() gives at each load, without a Serving per load (sizing asks a dozen loads per configuration)."""
    p, o = max(int(prompt_tokens), 1), max(int(output_tokens), 1)
    cap = _capacity_of(cat, cfg, p, o, context)

    def at(users: int) -> tuple[float, float, float]:
        return _at(cap, o, users)[1:4]

    return cap[3], at  # cap[3]: the sequences that fit


def _serve(cat: Catalog, cfg: Config, users: int | None, prompt_tokens: int, output_tokens: int,
           context: int | None = None) -> Serving:
    p, o = max(int(prompt_tokens), 1), max(int(output_tokens), 1)
    cap = _capacity_of(cat, cfg, p, o, context)
    engine, _, _, fitting, _, (sat_tps, _, sat_regime), _, _ = cap
    running, total, per_user, ttft, regime = _at(cap, o, users)
    return Serving(users, p, o, engine, running, total, per_user, ttft, sat_tps, fitting, regime, sat_regime)
