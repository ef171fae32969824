"""Inference calibration (facts/efficiency.yaml): engine builds, borrowed calibrations, GGUF K-quant fallbacks."""

from __future__ import annotations

import pytest

from expert.estimate import ENGINES, GIB, Config, estimate, weight_bytes
from expert.estimate.engines import borrowed, engine_efficiency
from expert.estimate.memory import ffn_down_type, k_fallback_bytes


def _cfg(cat, model="llama-2-7b", gpu="rtx-4090", precision="q4_0", engine="llama.cpp", context=64):
    return Config(model=cat.models[model], gpu=cat.gpus[gpu], count=1, precision=cat.precisions[precision],
                  workload="inference", context=context, batch=1, engine=engine)


@pytest.mark.parametrize("engine", ["exllamav2", "mlc", "sglang"])
def test_an_engine_without_its_own_measurement_is_assumed_on_cuda(cat, engine):
    est = estimate(cat, _cfg(cat, precision="int4", engine=engine))
    for kind in ("decode_tokens_per_s", "prefill_tokens_per_s"):
        assert est.ranges[kind]["provenance"] == "assumed", (engine, kind, est.ranges[kind])
        assert "override" in est.ranges[kind]["basis"]


def test_mlx_decode_is_calibrated_but_its_prefill_is_an_assumption(cat):
    # Decode has its own entry, checked on the mlx_lm record of mlx-examples PR #1069; prefill has no MLX record.
    m2 = cat.gpus["m2-ultra-192gb"]
    est = estimate(cat, _cfg(cat, gpu="m2-ultra-192gb", precision="q4_k_m", engine="mlx"))
    assert borrowed(cat, "decode", "mlx", m2) is None
    assert est.ranges["decode_tokens_per_s"]["provenance"] in ("derived", "measured")
    assert borrowed(cat, "prefill", "mlx", m2) == "llama.cpp-metal"
    assert est.ranges["prefill_tokens_per_s"]["provenance"] == "assumed"
    # The prefill numbers are the lender's: only the provenance differs.
    own = estimate(cat, _cfg(cat, gpu="m2-ultra-192gb", precision="q4_k_m", engine="llama.cpp"))
    assert est.throughput["prefill_tokens_per_s"] == pytest.approx(own.throughput["prefill_tokens_per_s"])


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm"])
def test_a_calibrated_engine_stays_derived(cat, engine):
    est = estimate(cat, _cfg(cat, precision="q4_k_m" if engine == "llama.cpp" else "int4", engine=engine))
    assert borrowed(cat, "decode", engine, cat.gpus["rtx-4090"]) is None
    assert est.ranges["decode_tokens_per_s"]["provenance"] in ("derived", "measured")


def test_borrowed_entries_are_one_object_per_engine_and_entry(cat):
    gpu = cat.gpus["rtx-4090"]
    assert engine_efficiency(cat, "decode", "mlc", gpu) is engine_efficiency(cat, "decode", "mlc", gpu)


def test_current_llama_cpp_builds_decode_faster_than_the_eager_ones(cat):
    # CUDA graphs (llama.cpp PR #6766 / #7302) removed most of the per-layer host cost; the bandwidth fraction
    # is the same (facts/efficiency.yaml decode.llama.cpp-cuda vs llama.cpp-eager-cuda).
    assert "llama.cpp-eager" not in ENGINES  # a validation-era build, not an --engine choice
    new = engine_efficiency(cat, "decode", "llama.cpp", cat.gpus["rtx-4090"])
    old = engine_efficiency(cat, "decode", "llama.cpp-eager", cat.gpus["rtx-4090"])
    assert new["bandwidth_fraction"] == old["bandwidth_fraction"]
    assert new["layer_overhead_us"] < old["layer_overhead_us"]
    fast = estimate(cat, _cfg(cat)).throughput["decode_tokens_per_s"]
    slow = estimate(cat, _cfg(cat, engine="llama.cpp-eager")).throughput["decode_tokens_per_s"]
    # llama.cpp #15013 (2025-26 build, RTX 4090 D, same 1008 GB/s) 189.3 t/s; XiongjieDai Dec 2023 RTX 4090 149.4.
    assert 170 < fast < 210 and 125 < slow < 160


def test_eager_builds_still_split_layers_over_gpus(cat):
    cfg = Config(model=cat.models["llama-3-70b"], gpu=cat.gpus["rtx-3090"], count=2,
                 precision=cat.precisions["q4_k_m"], workload="inference", context=256, batch=1,
                 engine="llama.cpp-eager")
    assert estimate(cat, cfg).parallelism == "layer-split"


def test_k_quant_rows_that_do_not_divide_by_256_fall_back_to_a_larger_type(cat):
    qwen, llama = cat.models["qwen2.5-72b"], cat.models["llama-3-8b"]
    assert qwen.intermediate_size % 256 and not llama.intermediate_size % 256
    assert k_fallback_bytes(llama, cat.precisions["q4_k_m"]) == 0
    # mradermacher/Qwen2.5-72B-Instruct-GGUF 'Provided Quants': Q4_K_M 47.5 GB, Q6_K 64.4 GB.
    for prec, published_gb in (("q4_k_m", 47.5), ("q6_k", 64.4)):
        got = weight_bytes(qwen, cat.precisions[prec]) / 1e9
        assert got == pytest.approx(published_gb, rel=0.02), prec
    assert weight_bytes(qwen, cat.precisions["fp16"]) / GIB == pytest.approx(qwen.params * 2 / GIB, rel=0.001)


def test_q4_k_m_gives_half_the_ffn_down_tensors_q6_k():
    # llama.cpp llama-quant.cpp use_more_bits: first and last eighth of the layers and every third between.
    kinds = [ffn_down_type("q4_k_m", i, 80) for i in range(80)]
    assert kinds.count("q6_k") == 40 and kinds.count("q4_k") == 40
    assert ffn_down_type("q8_0", 0, 80) is None
