"""A Hugging Face `config.json` read as a catalog Model, one parser per `model_type`.

Only layouts the estimator models faithfully are accepted: Llama-style decoders (llama, mistral, qwen2, qwen3),
Mixtral-style MoE (mixtral, qwen3_moe, qwen2_moe with its shared expert), Gemma 3 (sliding-window layers),
Llama 4 (shared expert, interleaved MoE, chunked local attention) and gpt-oss (sliding-window MoE). Anything
else - or a known type using a feature the estimator does not model (MLA, per-layer windows of unusual shape,
sparse-step MoE) - is refused with one line naming the feature, never silently miscounted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from .model import Model, count_params

MAX_BYTES = 1 << 20  # real configs are a few KiB; a larger file is not a config
MAX_DEPTH = 6  # top level -> text_config -> rope_scaling -> ... (real configs nest 3 deep)
DEFAULT_CONTEXT = 4096

# Keys whose presence means an architecture the estimator would miscount.
UNSUPPORTED_KEYS = {
    "kv_lora_rank": "multi-head latent attention (MLA, DeepSeek-V2/V3)",
    "q_lora_rank": "multi-head latent attention (MLA, DeepSeek-V2/V3)",
    "n_routed_experts": "DeepSeek-style MoE (routed + shared experts with MLA)",
    "num_kv_shared_layers": "KV sharing across layers (Gemma 3n)",
    "altup_num_inputs": "AltUp layers (Gemma 3n)",
    "linear_attention": "linear attention layers",
    "ssm_cfg": "state-space (Mamba) layers",
    "mamba_d_state": "state-space (Mamba) layers",
    "rwkv": "RWKV recurrence",
}

# transformers Gemma3TextConfig.__init__ defaults (models/gemma3/configuration_gemma3.py). The published Gemma 3
# 4B/12B/27B config.json files omit every text_config field equal to its default (the 12B states no head_dim and no
# vocab_size, the 4B not even its head counts), so they must be read through these, never through the Llama defaults
# (head_dim = hidden / heads would give the 12B 240 instead of 256).
GEMMA3_TEXT_DEFAULTS = {"vocab_size": 262208, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                        "max_position_embeddings": 131072, "sliding_window": 4096, "tie_word_embeddings": True}

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "gemma3", "gemma3_text",
             "llama4", "llama4_text", "gpt_oss")


def _depth(v: Any, level: int = 0) -> int:
    if isinstance(v, dict):
        return max([level + 1] + [_depth(x, level + 1) for x in v.values()])
    if isinstance(v, list):
        return max([level + 1] + [_depth(x, level + 1) for x in v])
    return level


class _Cfg:
    """Typed access to one config mapping; every error names the file and the field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def fail(self, msg: str) -> InputError:
        return InputError(f"--model {self.where}: {msg}")

    def int(self, key: str, default: int | None = None, *, minimum: int = 1, maximum: int = 10_000_000) -> int:
        v = self.data.get(key, default)
        if v is None:
            raise self.fail(f"config.json lacks positive integer field(s) {key}")
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
            raise self.fail(f"{key} must be an integer from {minimum} to {maximum}, got {v!r}")
        return v

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.data.get(key, default)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.fail(f"{key} must be true or false, got {v!r}")
        return v

    def str_list(self, key: str) -> list[str]:
        v = self.data.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(f"{key} must be a list of strings")
        return v

    def int_list(self, key: str) -> list[int]:
        v = self.data.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise self.fail(f"{key} must be a list of integers")
        return v


def read_config(path: Path) -> dict[str, Any]:
    """The parsed JSON object, size- and depth-limited."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"--model {path}: {size:,} bytes is too large for a config.json (limit 1 MiB)")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--model {path}: cannot read config.json: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"--model {path}: not a valid JSON config.json ({exc})") from None
    try:
        cfg = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"--model {path}: not a valid JSON config.json ({exc})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"--model {path}: config.json must be a JSON object")
    if _depth(cfg) > MAX_DEPTH:
        raise InputError(f"--model {path}: config.json nests deeper than {MAX_DEPTH} levels")
    return cfg


def _vision_params(v: _Cfg, text_hidden: int, kind: str) -> int:
    """Vision encoder + projector of a multimodal checkpoint: a pre-norm ViT with biased linear layers."""
    h, i, n = v.int("hidden_size"), v.int("intermediate_size"), v.int("num_hidden_layers")
    p, img, ch = v.int("patch_size"), v.int("image_size"), v.int("num_channels", 3)
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h  # q,k,v,o; fc1, fc2; two LayerNorms
    patches = (img // p) ** 2
    if kind == "llama4":
        # Llama 4: bias-free patch linear, class token, 2-D positions incl. the class token, pre/post LayerNorm,
        # a pixel-shuffle adapter MLP and a linear projector into the text width.
        ratio = v.data.get("pixel_shuffle_ratio", 0.5)
        # The shuffle merges (1 / ratio)^2 patches into one token: no more than the image has (a tiny ratio also
        # underflowed ratio^2 to zero).
        if (not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 1
                or ratio * ratio * patches < 1):
            raise v.fail(f"pixel_shuffle_ratio must be a number in (0, 1] that merges at most the "
                         f"image's {patches} patches (ratio >= {patches ** -0.5:.3g}), got {ratio!r}")
        pin, pout = v.int("projector_input_dim"), v.int("projector_output_dim")
        adapter = int(h / ratio**2) * pin + pin * pout
        projector = v.int("vision_output_dim") * text_hidden
        return n * layer + ch * p * p * h + h + (patches + 1) * h + 4 * h + adapter + projector
    # SigLIP (Gemma 3): biased patch conv, learned positions, post LayerNorm; projector: RMSNorm + linear.
    return n * layer + ch * p * p * h + h + patches * h + 2 * h + h + h * text_hidden


def model_from_config(path: Path) -> Model:
    """A Model from a config.json, or InputError naming what the estimator cannot model."""
    raw = read_config(path)
    top = _Cfg(raw, str(path))
    mtype = raw.get("model_type", "llama")  # hand-written configs without one are read as a Llama layout
    if not isinstance(mtype, str):
        raise top.fail("model_type must be a string; supported: " + ", ".join(SUPPORTED))
    text = raw
    if isinstance(raw.get("text_config"), dict):
        text = {**raw, **raw["text_config"]}
    elif "text_config" in raw and raw["text_config"] is not None:
        raise top.fail("text_config must be a mapping")
    if mtype in ("gemma3", "gemma3_text"):
        text = {**GEMMA3_TEXT_DEFAULTS, **text}
    c = _Cfg(text, str(path))
    for key, feature in UNSUPPORTED_KEYS.items():
        if text.get(key) not in (None, False, 0):
            raise c.fail(f"unsupported architecture feature: {feature} ({key}); the estimator would miscount it")
    if mtype not in SUPPORTED:
        raise c.fail(f"unsupported model_type {mtype!r}; supported: {', '.join(SUPPORTED)}")

    h = c.int("hidden_size", maximum=100_000)
    heads = c.int("num_attention_heads", maximum=1024)
    layers = c.int("num_hidden_layers", maximum=1000)
    kv = c.int("num_key_value_heads", heads, maximum=1024)
    head_dim = c.int("head_dim", h // heads, maximum=1024)
    if heads % kv:
        raise c.fail("num_key_value_heads must be a positive divisor of num_attention_heads")
    arch: dict[str, Any] = {
        "layers": layers, "hidden_size": h, "attention_heads": heads, "kv_heads": kv, "head_dim": head_dim,
        "intermediate_size": c.int("intermediate_size", maximum=1_000_000),
        "vocab_size": c.int("vocab_size", minimum=100, maximum=2_000_000),
        "tied_embeddings": c.bool("tie_word_embeddings", mtype.startswith("gemma3")),
        "attention_bias": c.bool("attention_bias", mtype == "qwen2" or mtype == "qwen2_moe"),
        "experts": 0, "active_experts": 0,
    }
    if mtype in ("qwen3", "qwen3_moe"):
        arch["qk_norm"] = True
    local: tuple[str, int, int] | None = None

    if mtype in ("mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss"):
        arch["experts"] = c.int("num_local_experts" if mtype in ("mixtral", "gpt_oss") else "num_experts",
                                maximum=1024)
        arch["active_experts"] = c.int("num_experts_per_tok", maximum=arch["experts"])
        if mtype in ("qwen2_moe", "qwen3_moe"):
            arch["expert_intermediate_size"] = c.int("moe_intermediate_size", maximum=1_000_000)
            if c.int("decoder_sparse_step", 1) != 1 or c.int_list("mlp_only_layers"):
                raise c.fail("unsupported architecture feature: dense layers between MoE layers "
                             "(decoder_sparse_step / mlp_only_layers)")
        if mtype == "qwen2_moe":
            # Qwen2-MoE: one shared expert of its own width (plus a 1-wide sigmoid gate, h weights per layer).
            arch["shared_experts"] = 1
            arch["shared_expert_intermediate_size"] = c.int("shared_expert_intermediate_size", maximum=1_000_000)
    if mtype in ("mistral", "mixtral") and text.get("sliding_window") is not None:
        # Mistral 7B v0.1: every layer slides over the last `sliding_window` tokens.
        local = ("sliding", c.int("sliding_window", maximum=100_000_000), layers)
    if mtype in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        window = text.get("sliding_window")
        if c.bool("use_sliding_window") and window is not None:
            raise c.fail("unsupported architecture feature: sliding-window attention on every layer "
                         f"(use_sliding_window with sliding_window={window!r})")
    if mtype in ("gemma3", "gemma3_text"):
        arch["norms_per_layer"] = 4
        arch["qk_norm"] = True
        window = c.int("sliding_window", maximum=10_000_000)
        kinds = c.str_list("layer_types")
        if kinds:
            n_local = sum(k == "sliding_attention" for k in kinds)
        else:
            # Every `sliding_window_pattern`-th layer is global, the others slide (5 local : 1 global).
            pattern = c.int("sliding_window_pattern", 6, maximum=1000)
            n_local = layers - layers // pattern
        local = ("sliding", window, n_local)
    if mtype in ("llama4", "llama4_text"):
        ie, idense = c.int("intermediate_size", maximum=1_000_000), c.int("intermediate_size_mlp", maximum=1_000_000)
        arch.update(intermediate_size=idense, expert_intermediate_size=ie, shared_experts=1,
                    experts=c.int("num_local_experts", maximum=1024))
        arch["active_experts"] = c.int("num_experts_per_tok", maximum=arch["experts"])
        moe = c.int_list("moe_layers")
        step = c.int("interleave_moe_layer_step", 1, maximum=layers)
        arch["moe_layers"] = len(moe) if moe else len(range(step - 1, layers, step))
        # iRoPE: layers with RoPE (no_rope_layers[i] == 1) use chunked local attention; the NoPE ones are global.
        nope = c.int_list("no_rope_layers")
        chunk = text.get("attention_chunk_size")
        if chunk is not None:
            chunk = c.int("attention_chunk_size", maximum=10_000_000)
            n_local = sum(1 for x in nope if x) if nope else layers - layers // 4
            local = ("chunked", chunk, n_local)
    if mtype == "gpt_oss":
        window = c.int("sliding_window", maximum=10_000_000)
        kinds = c.str_list("layer_types")
        n_local = sum(k == "sliding_attention" for k in kinds) if kinds else layers // 2
        local = ("sliding", window, n_local)
    if local and local[2]:
        arch["local_attention"] = {"kind": local[0], "window": local[1], "layers": local[2]}
    vision = raw.get("vision_config")
    if isinstance(vision, dict) and mtype in ("llama4", "gemma3"):
        arch["vision_params"] = _vision_params(_Cfg(vision, f"{path} vision_config"), h, mtype[:6])
    elif vision is not None and mtype not in ("llama4", "gemma3"):
        raise c.fail("unsupported architecture feature: a vision tower of this model_type")
    params = count_params(arch)
    name = raw.get("_name_or_path") if isinstance(raw.get("_name_or_path"), str) else None
    la = arch.pop("local_attention", None)
    return Model(
        id=f"config:{path.parent.name or path.name}", name=name or path.parent.name or "custom", family=mtype,
        hf_repo=None, licence="see the model card",
        max_context=c.int("max_position_embeddings", DEFAULT_CONTEXT, minimum=128, maximum=100_000_000),
        params=params, sources=(),
        local_attention=la["kind"] if la else None, local_window=la["window"] if la else 0,
        local_layers=la["layers"] if la else 0, **arch,
    )
