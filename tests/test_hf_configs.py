"""Real public Hugging Face config.json files (tests/configs/) are parsed per model_type and counted within 0.5 % of
the published parameter count; a config of an architecture the estimator cannot model is refused in one line that
names the feature (issue 12 item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from expert.catalog.hf_config import model_from_config
from expert.core.errors import InputError

CONFIGS = Path(__file__).resolve().parent / "configs"

# file -> (published total parameters, where it is published). Multimodal checkpoints count their vision tower,
# as the published totals do.
PUBLISHED = {
    # Gemma 3 Technical Report (arXiv 2503.19786) Table 1: vision encoder + embedding + non-embedding parameters.
    "gemma-3-4b-it.json": (417e6 + 675e6 + 3209e6, "Gemma 3 report Table 1: 417M + 675M + 3,209M"),
    "gemma-3-12b-it.json": (417e6 + 1012e6 + 10759e6, "Gemma 3 report Table 1: 417M + 1,012M + 10,759M"),
    # OpenAI gpt-oss model card: gpt-oss-20b 20.91 B total (3.61 B active).
    "gpt-oss-20b.json": (20.91e9, "OpenAI gpt-oss model card: 20.91 B total"),
    # Meta Llama 4 announcement / model card: Scout 17 B active, 109 B total.
    "llama-4-scout-17b-16e.json": (109e9, "Meta Llama 4 model card: 109 B total"),
    # Qwen2 release blog model table (qwenlm.github.io/blog/qwen2): Qwen2-57B-A14B 57.41B parameters.
    "qwen2-57b-a14b.json": (57.41e9, "Qwen2 blog model table: 57.41B"),
    # Qwen3 model cards 'Number of Parameters': 30.5B in total (3.3B activated), 32.8B, 8.2B.
    "qwen3-30b-a3b.json": (30.5e9, "Qwen3-30B-A3B model card: 30.5B"),
    "qwen3-32b.json": (32.8e9, "Qwen3-32B model card: 32.8B"),
    "qwen3-8b.json": (8.2e9, "Qwen3-8B model card: 8.2B"),
}
# file -> the feature the one-line refusal must name.
UNSUPPORTED = {
    # deepseek-ai/DeepSeek-V2-Lite config.json: MLA (kv_lora_rank 512) with DeepSeek-MoE routing.
    "deepseek-v2-lite.json": "multi-head latent attention",
}


def test_every_shipped_config_is_checked():
    shipped = {p.name for p in CONFIGS.glob("*.json")}
    assert shipped == set(PUBLISHED) | set(UNSUPPORTED), shipped ^ (set(PUBLISHED) | set(UNSUPPORTED))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_within_half_a_percent_of_the_published_count(name):
    published, where = PUBLISHED[name]
    model = model_from_config(CONFIGS / name)
    assert abs(model.params - published) <= 0.005 * published, (name, model.params, where)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_architecture_is_refused_in_one_line_naming_the_feature(name):
    with pytest.raises(InputError) as exc:
        model_from_config(CONFIGS / name)
    message = str(exc.value)
    assert "\n" not in message and UNSUPPORTED[name] in message and "unsupported" in message


def test_the_cli_refuses_it_with_exit_2_and_one_line():
    out = subprocess.run([sys.executable, "-m", "expert", "estimate", "--model", str(CONFIGS / "deepseek-v2-lite.json"),
                          "--gpu", "h100-sxm"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "multi-head latent attention" in lines[0], out.stderr


@pytest.mark.parametrize("name,layers,local,heads,kv", [("gemma-3-4b-it.json", 34, 29, 8, 4),
                                                        ("gemma-3-12b-it.json", 48, 40, 16, 8)])
def test_gemma_3_reads_the_omitted_defaults_and_its_5_to_1_sliding_layers(name, layers, local, heads, kv):
    # The files omit fields equal to transformers' Gemma3TextConfig defaults (head_dim 256, vocab 262208, and for
    # the 4B the head counts); every 6th layer is global, the others slide over 1024 tokens.
    m = model_from_config(CONFIGS / name)
    assert (m.layers, m.attention_heads, m.kv_heads, m.head_dim, m.vocab_size) == (layers, heads, kv, 256, 262208)
    assert (m.local_attention, m.local_window, m.local_layers) == ("sliding", 1024, local)
    # KV cache at 32k tokens: the sliding layers hold 1024, the global ones everything.
    assert m.kv_cached_tokens(32768) == pytest.approx((local * 1024 + (layers - local) * 32768) / layers)


def test_the_catalog_gemma_3_entries_match_their_configs(cat):
    for mid, name in (("gemma-3-4b", "gemma-3-4b-it.json"), ("gemma-3-12b", "gemma-3-12b-it.json")):
        entry, parsed = cat.models[mid], model_from_config(CONFIGS / name)
        for field in ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size",
                      "vocab_size", "local_window", "local_layers"):
            assert getattr(entry, field) == getattr(parsed, field), (mid, field)
        # The catalog entry is the text model: the config's count less its SigLIP tower.
        assert entry.params == parsed.params - parsed.vision_params
