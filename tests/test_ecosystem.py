"""Issue 15: model and GPU ids as users type them, token suffixes, and seeing / steering the ranked options."""

from __future__ import annotations

import json

import pytest

from expert.core.errors import InputError
from expert.request import build_request, parse_number, parse_tokens, resolve_gpu, resolve_model

from .conftest import run_cli


@pytest.mark.parametrize("repo", ["meta-llama/Llama-2-13b-hf", "META-LLAMA/llama-2-13B-HF",
                                  " meta-llama/Llama-2-13b-hf "])
def test_hugging_face_repo_ids_resolve_offline_in_any_case(cat, repo):
    model, note = resolve_model(cat, repo)
    assert model.id == "llama-2-13b"
    assert "Hugging Face id" in note


def test_every_catalog_model_resolves_by_its_hf_repo(cat):
    for m in cat.models.values():
        assert resolve_model(cat, m.hf_repo)[0].id == m.id


def test_unknown_repo_id_asks_for_its_config_and_names_the_closest():
    res = run_cli("advise", "--budget", "20000", "--model", "meta-llama/Llama-2-13b-chat-hf-x")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "pass its config.json" in res.err
    assert "closest: meta-llama/Llama-2-13b-hf" in res.err


def test_gpu_ids_are_case_insensitive(cat):
    assert resolve_gpu(cat, "H100-SXM") == "h100-sxm"
    assert resolve_gpu(cat, "rtx_4090") == "rtx-4090"
    with pytest.raises(InputError, match="--gpu: unknown GPU 'h900'; closest"):
        resolve_gpu(cat, "h900")
    res = run_cli("estimate", "--model", "8b", "--gpu", "H100-SXM", "--count", "8", "--format", "json")
    assert res.code == 0 and json.loads(res.out)["gpu"] == "h100-sxm"
    res = run_cli("advise", "--budget", "20000", "--model", "13b", "--why-not", "RTX-4090")
    assert res.code == 0 and "Why not rtx-4090" in res.out


def test_token_suffixes_read_as_the_engines_read_them(cat):
    assert parse_tokens("8K", "--context") == 8192
    assert parse_tokens("128K", "--context") == 131072
    assert parse_tokens("1M", "--context") == 2**20
    assert parse_tokens("8k", "--context") == 8000  # lower case is decimal, as in vLLM
    assert parse_tokens("4096", "--context") == 4096
    # money and token totals stay decimal
    assert parse_number("20k", "--budget") == 20000
    assert parse_number("2T", "--tokens") == 2e12
    req = build_request(cat, model="8b", budget="20k", context="8K", prompt_tokens="2K", output_tokens="1K")
    assert (req.context, req.prompt_tokens, req.output_tokens, req.budget) == (8192, 2048, 1024, 20000)
    req = build_request(cat, model="70b", budget="1M", workload="training", tokens="2T", context="4K")
    assert (req.tokens, req.context) == (2e12, 4096)


def _advise_json(*extra: str) -> dict:
    res = run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "json", *extra)
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_top_lists_n_ranked_options_in_text_and_json():
    doc = _advise_json("--top", "5")
    assert [t["rank"] for t in doc["top"]] == [1, 2, 3, 4, 5]
    scores = [t["score"] for t in doc["top"]]
    assert all(t["capex"] > 0 and t["label"] for t in doc["top"])
    assert len(set(scores)) > 1
    res = run_cli("advise", "--budget", "20000", "--model", "13b", "--top", "3")
    block = res.out.split("TOP 3 RANKED", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(".")[0].strip() for line in block] == ["1", "2", "3"]
    assert doc["top"][0]["gpu"] in block[0]
    assert "top" not in _advise_json() and "TOP" not in run_cli("advise", "--budget", "20000", "--model", "13b").out
    assert run_cli("advise", "--budget", "20000", "--model", "13b", "--top", "0").code == 2


def test_only_and_exclude_filter_the_pool_before_the_engine():
    doc = _advise_json("--only", "L40S,a100-80gb-pcie", "--top", "50")
    seen = {c["gpu"] for c in doc["top"] + doc["options"]} | {r["gpu"] for r in doc["rejected"]}
    assert seen and seen <= {"l40s", "a100-80gb-pcie"}
    pick = _advise_json()["recommendation"]["gpu"]
    doc = _advise_json("--exclude", pick.upper(), "--top", "50")
    assert pick not in {c["gpu"] for c in doc["top"]} | {r["gpu"] for r in doc["rejected"]}
    assert doc["recommendation"]["gpu"] != pick
    res = run_cli("advise", "--budget", "20000", "--model", "13b", "--only", "h900")
    assert res.code == 2 and "--only: unknown GPU 'h900'" in res.err
    res = run_cli("advise", "--budget", "20000", "--model", "13b", "--only", "l4", "--exclude", "L4")
    assert res.code == 2 and "no GPU is left" in res.err


def test_compare_prints_the_reports_numbers_side_by_side():
    doc = _advise_json()
    rec = doc["recommendation"]
    spec = f"{rec['count']}x{rec['gpu'].upper()}@{rec['precision']}"
    res = run_cli("compare", spec, "2xrtx-4090@int4", "--budget", "20000", "--model", "13b", "--format", "json")
    assert res.code == 0, res.err
    cmp = json.loads(res.out)
    first, second = cmp["configs"]
    assert first["config"] == spec and first["feasible"] and first["rejected_by"] == []
    assert first["capex"] == rec["capex"] == first["gpu_capex"] + first["platform_capex"]
    same = ("system_cost", "system_cost_text", "delivers", "unit_cost")
    assert {k: first["decision"][k] for k in same} == {k: doc["decision"][k] for k in same}
    assert first["cost_per_million_tokens"] == rec["cost_per_million_tokens"]
    assert first["memory_per_gpu_gib"] == rec["estimate"]["memory_gib"]["per_gpu"]
    # The score is the report's (relative to the report's cheapest system of that quality), not the column's.
    assert first["score"] == rec["score"]
    assert not second["feasible"] and "power_cost/over-budget" in {v["rule"] for v in second["rejected_by"]}
    text = run_cli("compare", spec, "2xrtx-4090@int4", "--budget", "20000", "--model", "13b").out
    assert f"{rec['capex']:,.0f}" in text.split("capex USD", 1)[1].splitlines()[0]
    assert "x [power_cost/over-budget]" in text and all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize("args, message", [
    (["h100-sxm"], "give 2 or 3 configurations"),
    (["2xh900@fp8", "l40s"], "unknown GPU 'h900'"),
    (["l40s@fp99", "l4"], "--precision: unknown precision"),
])
def test_compare_bad_configs_are_one_line_exit_2(args, message):
    res = run_cli("compare", *args, "--budget", "20000", "--model", "13b")
    assert res.code == 2 and message in res.err and res.err.count("\n") == 1
