"""Hand-checked numbers for the estimator (each expected value is worked out in the comment)."""

from __future__ import annotations

import math

import pytest

from expert.catalog import count_params
from expert.estimate import GIB, Config, estimate, kv_bytes_per_token, link_for, lora_params, weight_bytes


def cfg(cat, model, gpu, count=1, precision="fp16", **kw):
    return Config(model=cat.models[model], gpu=cat.gpus[gpu], count=count, precision=cat.precisions[precision], **kw)


def test_llama2_70b_kv_cache_2048_tokens_is_0_625_gib(cat):
    # 2 (K,V) x 80 layers x 8 KV heads x 128 dims x 2 bytes x 2048 tokens = 671,088,640 B = 0.625 GiB
    e = estimate(cat, cfg(cat, "llama-2-70b", "h100-sxm", 2, context=2048))
    assert e.memory_gib["kv_cache"] == pytest.approx(0.625, abs=1e-9)


def test_gqa_shrinks_kv_cache_eightfold_against_mha(cat):
    # Llama-2-70B has 8 KV heads for 64 query heads: an MHA model of the same shape would need 8x more.
    m = cat.models["llama-2-70b"]
    assert kv_bytes_per_token(m, cat.precisions["fp16"]) * m.attention_heads / m.kv_heads == 2 * 80 * 64 * 128 * 2


def test_llama2_13b_fp16_weights_do_not_fit_a_24_gib_rtx_4090(cat):
    # 13,015,864,320 params x 2 bytes = 26.03e9 B = 24.24 GiB > 24 GiB
    e = estimate(cat, cfg(cat, "llama-2-13b", "rtx-4090", context=2048))
    assert e.memory_gib["weights"] == pytest.approx(24.24, abs=0.01)
    assert not e.fits


def test_llama2_13b_fits_two_4090s_and_one_48gb_card(cat):
    assert estimate(cat, cfg(cat, "llama-2-13b", "rtx-4090", 2, context=2048)).fits
    assert estimate(cat, cfg(cat, "llama-2-13b", "l40s", 1, context=2048)).fits


def test_llama31_8b_param_count_matches_hf_safetensors_total(cat):
    # The Hugging Face checkpoint holds 8,030,261,248 parameters.
    m = cat.models["llama-3.1-8b"]
    assert m.params == 8_030_261_248
    arch = dict(layers=m.layers, hidden_size=m.hidden_size, attention_heads=m.attention_heads, kv_heads=m.kv_heads,
                head_dim=m.head_dim, intermediate_size=m.intermediate_size, vocab_size=m.vocab_size,
                tied_embeddings=m.tied_embeddings, attention_bias=m.attention_bias, experts=0)
    assert count_params(arch) == 8_030_261_248


def test_int4_keeps_embeddings_at_16_bit(cat):
    # Llama-3.1-8B: 1,050,673,152 embedding+head params at 2 B, the other 6,979,588,096 at 4.156/8 B.
    m, p = cat.models["llama-3.1-8b"], cat.precisions["int4"]
    expected = 6_979_588_096 * 4.156 / 8 + 1_050_673_152 * 2
    assert weight_bytes(m, p) == pytest.approx(expected, rel=1e-3)


def test_gguf_q4_k_m_size_matches_llama_cpp_readme(cat):
    # llama.cpp quantize README: Llama-3.1-8B Q4_K_M = 4.58 GiB.
    assert weight_bytes(cat.models["llama-3.1-8b"], cat.precisions["q4_k_m"]) / GIB == pytest.approx(4.58, rel=0.02)


def test_full_finetune_state_is_16_bytes_per_parameter(cat):
    e = estimate(cat, cfg(cat, "llama-2-7b", "h100-sxm", 8, "bf16", workload="finetune", context=2048))
    params = cat.models["llama-2-7b"].params
    state = e.memory_gib["weights"] + e.memory_gib["gradients"] + e.memory_gib["optimizer"]
    assert state == pytest.approx(params * 16 / GIB, rel=1e-9)


def test_fsdp_shards_training_state_across_gpus(cat):
    one = estimate(cat, cfg(cat, "llama-2-7b", "h100-sxm", 4, "bf16", workload="finetune", context=2048))
    two = estimate(cat, cfg(cat, "llama-2-7b", "h100-sxm", 8, "bf16", workload="finetune", context=2048))
    assert two.memory_gib["per_gpu"] < one.memory_gib["per_gpu"]


def test_lora_adapters_are_small_and_trainable_state_follows(cat):
    m = cat.models["llama-2-7b"]
    # rank 8 on q,k,v,o (4096x4096 each) and gate, up, down (4096x11008): 8 x (4x8192 + 3x15104) x 32 layers
    assert lora_params(m, 8) == 8 * (4 * 8192 + 3 * 15104) * 32
    e = estimate(cat, cfg(cat, "llama-2-7b", "rtx-4090", 1, "bf16", workload="lora", context=2048))
    assert e.memory_gib["optimizer"] < 0.1 * e.memory_gib["weights"]


def test_qlora_70b_fits_one_80gb_gpu_but_bf16_lora_does_not(cat):
    assert estimate(cat, cfg(cat, "llama-3.1-70b", "a100-80gb-sxm", 1, "nf4", workload="qlora", context=2048)).fits
    assert not estimate(cat, cfg(cat, "llama-3.1-70b", "a100-80gb-sxm", 1, "bf16", workload="lora",
                                 context=2048)).fits


def test_decode_is_bandwidth_bound_at_batch_1(cat):
    # Same compute (989 TFLOPS) on H100 SXM and H200 SXM; only bandwidth differs (3.35 vs 4.8 TB/s).
    h100 = estimate(cat, cfg(cat, "llama-3.1-70b", "h100-sxm", 2, "bf16")).throughput["decode_tokens_per_s"]
    h200 = estimate(cat, cfg(cat, "llama-3.1-70b", "h200-sxm", 2, "bf16")).throughput["decode_tokens_per_s"]
    assert h200 > h100 * 1.1


def test_quantization_speeds_up_decode(cat):
    fp16 = estimate(cat, cfg(cat, "llama-2-7b", "rtx-4090", 1, "fp16")).throughput["decode_tokens_per_s"]
    q4 = estimate(cat, cfg(cat, "llama-2-7b", "rtx-4090", 1, "q4_0")).throughput["decode_tokens_per_s"]
    assert q4 > 2 * fp16


def test_batching_raises_aggregate_decode_throughput(cat):
    b1 = estimate(cat, cfg(cat, "llama-3.1-8b", "l40s", 1, "fp8")).throughput["decode_tokens_per_s"]
    b16 = estimate(cat, cfg(cat, "llama-3.1-8b", "l40s", 1, "fp8", batch=16)).throughput["decode_tokens_per_s"]
    assert b16 > 8 * b1


def test_link_bandwidth_orders_nvlink_over_p2p_over_host_bounce(cat):
    nvlink = link_for(cat, cat.gpus["h100-sxm"], 8).gbs
    p2p = link_for(cat, cat.gpus["l40s"], 2).gbs
    host = link_for(cat, cat.gpus["rtx-4090"], 2).gbs
    assert nvlink > p2p > host


def test_tensor_parallel_over_pcie_host_bounce_costs_more_than_nvlink(cat):
    # Two cards of similar bandwidth: A6000 pair has an NVLink bridge; the 4090 pair bounces through host.
    a = estimate(cat, cfg(cat, "llama-2-13b", "rtx-a6000", 2, "fp16", engine="vllm"))
    b = estimate(cat, cfg(cat, "llama-2-13b", "rtx-4090", 2, "fp16", engine="vllm"))
    comm = [n for n in a.assumptions if "all-reduce" in n], [n for n in b.assumptions if "all-reduce" in n]
    assert "nvlink" in comm[0][0] and "pcie-host" in comm[1][0]


def test_layer_split_adds_memory_not_speed(cat):
    one = estimate(cat, cfg(cat, "llama-2-7b", "rtx-4090", 1, "q4_0")).throughput["decode_tokens_per_s"]
    two = estimate(cat, cfg(cat, "llama-2-7b", "rtx-4090", 2, "q4_0")).throughput["decode_tokens_per_s"]
    assert two <= one


def test_moe_decode_reads_only_active_experts(cat):
    m = cat.models["mixtral-8x7b"]
    # 2 of 8 experts per token: about 12.9 B of 46.7 B parameters are active.
    assert 12e9 < m.active_params < 14e9 < 46e9 < m.params


def test_training_throughput_scales_with_gpus_and_reports_per_configuration(cat):
    one = estimate(cat, cfg(cat, "llama-3.1-8b", "h100-sxm", 4, "bf16", workload="training", context=8192))
    two = estimate(cat, cfg(cat, "llama-3.1-8b", "h100-sxm", 8, "bf16", workload="training", context=8192))
    r1, r2 = one.throughput["train_tokens_per_s"], two.throughput["train_tokens_per_s"]
    assert 1.6 * r1 < r2 <= 2.0 * r1
    assert one.throughput["decode_tokens_per_s"] is None


def test_power_and_energy_cost_follow_price_and_pue(cat):
    e = estimate(cat, cfg(cat, "llama-2-7b", "l4", 1, "fp16", electricity_per_kwh=0.2, pue=1.5))
    watts = e.power["watts"]
    assert e.power["energy_cost_per_hour"] == pytest.approx(watts / 1000 * 1.5 * 0.2)
    per_m = e.power["energy_cost_per_hour"] / (e.throughput["decode_tokens_per_s"] * 3600) * 1e6
    assert e.power["energy_cost_per_million_tokens"] == pytest.approx(per_m)


def test_every_estimate_lists_its_assumptions(cat):
    for wl, prec in (("inference", "fp16"), ("qlora", "nf4"), ("training", "bf16")):
        e = estimate(cat, cfg(cat, "llama-2-7b", "a100-80gb-sxm", 4, prec, workload=wl))
        assert len(e.assumptions) >= 4
        assert all(isinstance(a, str) and a for a in e.assumptions)
        assert all(math.isfinite(v) for v in e.memory_gib.values())


def test_apple_unified_memory_is_capped_by_the_os(cat):
    e = estimate(cat, cfg(cat, "llama-3.1-70b", "m2-ultra-192gb", 1, "fp16"))
    assert e.memory_gib["available_per_gpu"] == cat.gpus["m2-ultra-192gb"].usable_memory_gib < 192


def test_kv_cache_quantisation_shrinks_the_cache(cat):
    from expert.estimate import KV_CACHE_BYTES

    m, p = cat.models["llama-3.1-8b"], cat.precisions["fp16"]
    fp16 = kv_bytes_per_token(m, p)
    assert kv_bytes_per_token(m, p, "fp8") == fp16 / 2
    assert kv_bytes_per_token(m, p, "q4_0") == fp16 * KV_CACHE_BYTES["q4_0"] / 2


def test_serving_saturates_and_queues(cat):
    from expert.estimate import serve

    cfg = Config(model=cat.models["llama-3.1-8b"], gpu=cat.gpus["h100-sxm"], count=1,
                 precision=cat.precisions["fp8"], engine="tensorrt-llm")
    one = serve(cat, cfg, 1, 128, 2048)
    many = serve(cat, cfg, 64, 128, 2048)
    sat = serve(cat, cfg, None, 128, 2048)
    assert one.total_tps < many.total_tps <= sat.saturation_tps
    assert one.per_user_tps > many.per_user_tps
    assert one.regime == "memory-bound"
    # Long prompts with short outputs are dominated by prefill FLOPs.
    assert serve(cat, cfg, None, 20000, 128).saturation_regime == "compute-bound"
    queued = serve(cat, cfg, sat.max_users_fitting * 4, 128, 2048)
    assert queued.ttft_s > sat.ttft_s


def test_the_load_curve_sizing_reads_is_serves_figures_at_every_load(cat):
    # Sizing asks load_curve (no Serving per load); it must give serve()'s numbers exactly, queueing included,
    # on one GPU, tensor-parallel, layer-split and an MoE (whose weight reads depend on the batch).
    from expert.estimate import serve
    from expert.estimate.serving import load_curve

    cases = [("llama-3.1-8b", "h100-sxm", 1, "fp8", "tensorrt-llm"), ("llama-2-70b", "a100-80gb-sxm", 4, "bf16", None),
             ("llama-2-70b", "rtx-4090", 4, "q4_k_m", "llama.cpp"), ("mixtral-8x7b", "h100-sxm", 2, "fp8", None)]
    for model, gpu, n, prec, engine in cases:
        c = Config(model=cat.models[model], gpu=cat.gpus[gpu], count=n, precision=cat.precisions[prec], engine=engine)
        fitting, at = load_curve(cat, c, 1024, 512, 4096)
        sat = serve(cat, c, None, 1024, 512, 4096)
        assert fitting == sat.max_users_fitting
        for users in sorted({1, 2, 7, 31, sat.running, sat.running + 1, 3 * sat.running + 5}):
            sv = serve(cat, c, users, 1024, 512, 4096, keep=False)
            assert at(users) == (sv.total_tps, sv.per_user_tps, sv.ttft_s), (model, gpu, users)


def test_partial_offload_is_slower_than_the_gpu(cat):
    cfg = Config(model=cat.models["mixtral-8x7b"], gpu=cat.gpus["rtx-4090"], count=1,
                 precision=cat.precisions["q4_k_m"])
    est = estimate(cat, cfg)
    assert not est.fits and est.offload is not None
    assert 0 < est.offload.decode_tokens_per_s < est.throughput["decode_tokens_per_s"]
    assert est.offload.cpu_layers + est.offload.gpu_layers == cfg.model.layers
    assert est.ranges["decode_tokens_per_s"]["low"] <= est.throughput["decode_tokens_per_s"]


def test_max_context_is_the_longest_that_fits(cat):
    from expert.estimate import fits_context, max_context

    cfg = Config(model=cat.models["llama-3.1-70b"], gpu=cat.gpus["h100-sxm"], count=1,
                 precision=cat.precisions["int4"], batch=8)
    fits = fits_context(cat, cfg, "vllm")
    longest = max_context(cat, cfg, fits)
    assert 0 < longest < cfg.model.max_context
    assert fits(longest) and not fits(longest + 1)


def test_compiled_engines_pay_no_per_layer_launch(cat):
    from expert.estimate import engine_efficiency

    h100 = cat.gpus["h100-sxm"]
    assert engine_efficiency(cat, "decode", "tensorrt-llm", h100)["layer_overhead_us"] == 0
    assert engine_efficiency(cat, "decode", "transformers", h100)["layer_overhead_us"] > 100
    # HBM and GDDR parts reach different shares of their datasheet bandwidth.
    a = engine_efficiency(cat, "decode", "llama.cpp", h100)["bandwidth_fraction"]
    b = engine_efficiency(cat, "decode", "llama.cpp", cat.gpus["rtx-4090"])["bandwidth_fraction"]
    assert a != b
