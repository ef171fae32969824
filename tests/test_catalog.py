"""The fact catalogs: complete, sourced, and malformed files rejected with file, entry and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from expert.catalog import load_catalog
from expert.core.errors import ExpertError, FactError

DESIGN_GPUS = """rtx-3090 rtx-4060-ti-16gb rtx-4080-super rtx-4090 rtx-4090d rtx-5090 rtx-a6000 rtx-6000-ada l4 l40s
a10 a100-40gb-pcie a100-80gb-pcie a100-80gb-sxm h100-pcie h100-sxm h100-nvl h200-sxm h20 b200 mi300x rx-7900-xtx
m2-ultra-192gb""".split()
DESIGN_MODELS = """llama-2-7b llama-2-13b llama-2-70b codellama-34b llama-3-8b llama-3-70b llama-3.1-8b llama-3.1-70b
llama-3.1-405b llama-3.2-1b llama-3.2-3b llama-3.3-70b mistral-7b mixtral-8x7b qwen2.5-7b qwen2.5-14b qwen2.5-32b
qwen2.5-72b""".split()
DESIGN_PRECISIONS = "fp32 fp16 bf16 fp8 int8 int4 nf4 q8_0 q6_k q5_k_m q4_k_m q4_0 q3_k_m q2_k".split()


def test_every_design_id_is_in_the_catalogs(cat):
    assert set(DESIGN_GPUS) <= set(cat.gpus)
    assert set(DESIGN_MODELS) <= set(cat.models)
    assert set(DESIGN_PRECISIONS) <= set(cat.precisions)
    for short in ("7b", "13b", "34b", "70b", "8b", "405b"):
        assert cat.shorthands[short] in cat.models


def test_every_gpu_has_a_dated_price_and_cited_sources(cat):
    for g in cat.gpus.values():
        assert g.price_usd > 0 and re.match(r"\d{4}", g.price_date), g.id
        assert g.sources and all(s in cat.sources for s in g.sources), g.id


def test_dense_not_sparse_flops_for_h100(cat):
    # H100 SXM dense BF16 is ~989 TFLOPS; the 1,979 headline figure is with 2:4 sparsity.
    assert cat.gpus["h100-sxm"].tflops_bf16 == pytest.approx(989.4, rel=0.01)


def test_geforce_flops_are_the_fp32_accumulate_rate(cat):
    # Ada whitepaper: RTX 4090 FP16 with FP32 accumulate 165.2 TFLOPS (330.3 with FP16 accumulate).
    assert cat.gpus["rtx-4090"].tflops_fp16 == pytest.approx(165.2)


def test_fp8_flags_match_architectures(cat):
    for g in cat.gpus.values():
        assert g.fp8 == (g.architecture in ("ada", "hopper", "blackwell", "cdna3", "cdna4", "gaudi3")), g.id


def _corrupt(facts: Path, name: str, old: str, new: str) -> None:
    p = facts / name
    text = p.read_text()
    assert old in text, old
    p.write_text(text.replace(old, new, 1))


def test_wrong_type_names_file_line_entry_and_field(facts_copy):
    _corrupt(facts_copy, "gpus.yaml", "memory_bandwidth_gbs: 1008", "memory_bandwidth_gbs: fast")
    with pytest.raises(FactError) as exc:
        load_catalog(facts_copy)
    msg = str(exc.value)
    assert re.match(r"facts/gpus\.yaml:\d+: gpu rtx-40\d0d?: memory_bandwidth_gbs: expected a number", msg), msg


def test_unknown_key_is_rejected(facts_copy):
    _corrupt(facts_copy, "models.yaml", "  layers: 80", "  layers: 80\n    layrs: 80")
    with pytest.raises(ExpertError, match=r"facts/models\.yaml:\d+"):
        load_catalog(facts_copy)


def test_missing_required_field(facts_copy):
    _corrupt(facts_copy, "precisions.yaml", "    compute: fp32\n", "")
    with pytest.raises(FactError, match=r"precision fp32: compute: required field missing"):
        load_catalog(facts_copy)


def test_numeric_fact_without_source_is_rejected(facts_copy):
    text = (facts_copy / "gpus.yaml").read_text()
    text = re.sub(r"\n    board_power_w: \[[^\]]*\]", "", text, count=1)
    (facts_copy / "gpus.yaml").write_text(text)
    with pytest.raises(FactError, match=r"board_power_w: numeric fact without a source"):
        load_catalog(facts_copy)


def test_citing_an_undefined_source_is_rejected(facts_copy):
    p = facts_copy / "gpus.yaml"
    text = p.read_text()
    start = text.index("- id: rtx-4090\n")
    p.write_text(text[:start] + re.sub(r"memory_gib: \[", "memory_gib: [NO_SUCH_SOURCE, ", text[start:], count=1))
    with pytest.raises(FactError, match=r"gpu rtx-4090: cites unknown source 'NO_SUCH_SOURCE'"):
        load_catalog(facts_copy)


def test_parameter_count_must_agree_with_architecture(facts_copy):
    _corrupt(facts_copy, "models.yaml", "params: 68976648192", "params: 70000000000")
    with pytest.raises(FactError, match=r"model llama-2-70b: params: .* disagrees with the architecture"):
        load_catalog(facts_copy)


def test_malformed_yaml_names_file_and_line(facts_copy):
    (facts_copy / "energy.yaml").write_text("regions: [unclosed\n")
    with pytest.raises(ExpertError, match=r"facts/energy\.yaml:\d+: malformed YAML"):
        load_catalog(facts_copy)


def test_yaml_tags_cannot_construct_python_objects(facts_copy):
    (facts_copy / "energy.yaml").write_text("regions: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ExpertError, match=r"facts/energy\.yaml:\d+"):
        load_catalog(facts_copy)


def test_adding_a_gpu_of_a_new_vendor_is_a_data_change_only(facts_copy, monkeypatch):
    from tests.conftest import run_cli

    text = (facts_copy / "gpus.yaml").read_text()
    start = text.index("- id: l40s\n")
    end = text.index("\n- id: ", start + 5) + 1
    entry = text[start:end].replace("- id: l40s\n", "- id: test-accel-96gb\n", 1)
    entry = entry.replace("vendor: nvidia", "vendor: intel", 1).replace("architecture: ada", "architecture: xe-hpc", 1)
    entry = entry.replace("stack: cuda", "stack: sycl", 1).replace("memory_gib: 48", "memory_gib: 96", 1)
    (facts_copy / "gpus.yaml").write_text(text + entry)
    monkeypatch.setenv("GPU_EXPERT_FACTS", str(facts_copy))
    assert "test-accel-96gb" in load_catalog(facts_copy).gpus
    r = run_cli("advise", "--budget", "50000", "--model", "70b", "--why-not", "test-accel-96gb")
    assert r.code == 0, r.err
    assert "test-accel-96gb" in r.out


def test_parts_of_the_chinese_market_are_in_the_catalog(cat):
    # Issue 12: the China-market parts (NVIDIA's China SKUs, Huawei Ascend on CANN) must be there to be weighed.
    for gid in ("h20", "l20", "h800", "a800-80gb-sxm", "rtx-4090d", "ascend-910b", "ascend-910c"):
        assert gid in cat.gpus, gid
    assert cat.gpus["ascend-910b"].stack == cat.gpus["ascend-910c"].stack == "cann"
    assert cat.gpus["h800"].china_only and cat.gpus["a800-80gb-sxm"].china_only


def test_export_flags_follow_the_current_rules(cat):
    # Consumer cards below the US thresholds are not restricted; Gaudi 3 and the big data-centre parts are.
    for gid in ("rtx-3060-12gb", "rtx-5060-ti-16gb", "rtx-4090d", "h20", "l20"):
        assert "china" not in cat.gpus[gid].export_restricted, gid
    for gid in ("gaudi-3", "h100-sxm", "b200", "mi355x"):
        assert "china" in cat.gpus[gid].export_restricted, gid


def test_most_gpu_facts_cite_a_primary_document(cat):
    from expert.catalog.provenance import source_report

    assert source_report(cat).primary_share >= 0.5
