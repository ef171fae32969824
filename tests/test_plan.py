"""Training plans (expert/estimate/plan.py): strategy choice, memory per strategy, layout, launch configs."""

from __future__ import annotations

import pytest

from expert.estimate import GIB, Config, estimate
from expert.estimate.launch import launchers, validate_launch
from expert.estimate.plan import Layout, Strategy, evaluate, goodput, plan_training


def cfg(cat, model, gpu, count, precision="bf16", workload="finetune", context=4096, batch=1):
    return Config(model=cat.models[model], gpu=cat.gpus[gpu], count=count, precision=cat.precisions[precision],
                  workload=workload, context=context, batch=batch)


def test_70b_full_finetune_on_one_h100_node_needs_zero3_with_cpu_offload(cat):
    p = plan_training(cat, cfg(cat, "llama-3.1-70b", "h100-sxm", 8), tokens=1e9)
    assert p.fits and p.strategy.sharding == "zero3" and p.strategy.offload != "none"
    assert p.strategy.offload_device == "cpu" and p.launch["tool"] == "deepspeed"
    zero = p.launch["config"]["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    # 16 B/param without offload: 70.6e9 x 16 / 8 GPUs = 131 GiB per GPU, more than 80.
    plain = evaluate(cat, cfg(cat, "llama-3.1-70b", "h100-sxm", 8), Strategy("deepspeed", "zero3"),
                     Layout(1, 1, 8, 1, 1, 8))
    assert not plain.fits and plain.per_gpu_gib["total"] > 131
    assert p.comm_s["offload"] > 0 and p.gpu_hours == pytest.approx(p.days * 24 * 8)


def test_zero_stages_shard_state_as_the_zero_paper_says(cat):
    c = cfg(cat, "llama-2-7b", "h100-sxm", 8)
    n = cat.models["llama-2-7b"].params
    mem = {s: evaluate(cat, c, Strategy("deepspeed", s), Layout(1, 1, 8)).per_gpu_gib for s in
           ("ddp", "zero1", "zero2", "zero3")}
    state = {s: (v["gradients"] + v["optimizer"]) * GIB / n for s, v in mem.items()}
    assert state["ddp"] == pytest.approx(2 + 12)  # bf16 grads + fp32 master, m, v
    assert state["zero1"] == pytest.approx(2 + 12 / 8)
    assert state["zero2"] == pytest.approx((2 + 12) / 8)
    assert mem["zero3"]["weights"] < mem["zero2"]["weights"] / 4  # 2 B/param sharded + two gathered layers


def test_8bit_and_paged_optimizers_shrink_state(cat):
    c = cfg(cat, "llama-3.1-8b", "rtx-a6000", 1, context=2048, batch=2)
    lo = Layout(1, 1, 1, 1, 2, 1)
    adam = evaluate(cat, c, Strategy("deepspeed", "ddp", checkpointing="full"), lo)
    bnb = evaluate(cat, c, Strategy("deepspeed", "ddp", "adamw-8bit", checkpointing="full"), lo)
    paged = evaluate(cat, c, Strategy("torchtune", "ddp", "paged-adamw-8bit", checkpointing="full"), lo)
    assert bnb.per_gpu_gib["optimizer"] == pytest.approx(adam.per_gpu_gib["optimizer"] / 2)
    assert not adam.fits and paged.fits
    assert plan_training(cat, c).strategy.optimizer != "adamw"  # only an 8-bit optimizer fits one 48 GB card


def test_checkpointing_and_activation_offload_trade_memory_for_time(cat):
    c = cfg(cat, "llama-3.1-8b", "h100-sxm", 8, context=8192)
    lo = Layout(1, 1, 8, 1, 1, 4)
    act = {ck: evaluate(cat, c, Strategy("torchtitan", "zero3", checkpointing=ck), lo) for ck in
           ("none", "selective", "full", "full+offload")}
    mems = [act[k].per_gpu_gib["activations"] for k in ("none", "selective", "full", "full+offload")]
    assert mems == sorted(mems, reverse=True)
    assert act["full"].step_s > act["none"].step_s  # one extra forward pass


def test_pipeline_bubble_follows_the_megatron_formula():
    assert Layout(8, 16, 64, 1, 1, 32).bubble == pytest.approx(15 / 47)
    assert Layout(8, 16, 64, 1, 1, 32, virtual_stages=4).bubble == pytest.approx(15 / (4 * 32 + 15))
    assert Layout(8, 1, 64).bubble == 0


def test_large_pretraining_run_gets_an_explained_3d_layout(cat):
    p = plan_training(cat, cfg(cat, "llama-3.1-70b", "h100-sxm", 1024, workload="training", context=8192), 2e12)
    lo = p.layout
    assert lo.tp * lo.pp * lo.dp * lo.cp == 1024 and lo.tp <= 8 and p.fits
    assert p.links.get("tensor", "nvlink") == "nvlink"  # TP never leaves the NVLink domain
    assert lo.dp * lo.micro_batch * 8192 <= 16 * 2**20  # within the largest published Llama batch
    assert 0.3 < p.mfu < 0.65 and p.goodput < 1.0 and p.days > 1
    assert any("tensor parallel" in n or "data parallel" in n for n in p.notes)


def test_llama3_405b_table4_layout_reproduces_the_published_mfu(cat):
    c = cfg(cat, "llama-3.1-405b", "h100-sxm", 16384, workload="training", context=8192)
    p = plan_training(cat, c, constraint={"tp": 8, "pp": 16, "dp": 128, "cp": 1, "micro_batch": 1, "grad_accum": 16})
    assert p.mfu == pytest.approx(0.41, rel=0.15)


def test_goodput_is_the_llama3_figure_at_16k_gpus_and_higher_below(cat):
    assert goodput(cat, 16384) == pytest.approx(0.9)
    assert goodput(cat, 8) > 0.999


def test_qlora_pays_for_dequantisation(cat):
    lo = Layout(1, 1, 1, 1, 2, 1)
    st = Strategy("torchtune", "ddp", checkpointing="full")
    lora = evaluate(cat, cfg(cat, "llama-3.1-8b", "rtx-4090", 1, workload="lora", context=2048, batch=2), st, lo)
    qlora = evaluate(cat, cfg(cat, "llama-3.1-8b", "rtx-4090", 1, "nf4", workload="qlora", context=2048, batch=2),
                     st, lo)
    assert qlora.tokens_per_s < lora.tokens_per_s
    # NF4 at 4.127 bits/weight with the 16-bit embeddings and lm_head: 5.3 GiB against 15.0 GiB in bf16.
    assert qlora.per_gpu_gib["weights"] < lora.per_gpu_gib["weights"] / 2.5


@pytest.mark.parametrize("model,gpu,count,workload,ctx", [
    ("llama-3.1-70b", "h100-sxm", 8, "finetune", 4096), ("llama-3.1-70b", "h100-sxm", 1024, "training", 8192),
    ("llama-3.1-8b", "rtx-4090", 1, "finetune", 2048), ("llama-3.1-8b", "rtx-4090", 1, "qlora", 2048),
    ("llama-3.1-405b", "h100-sxm", 16384, "training", 131072), ("llama-3.1-8b", "a100-80gb-sxm", 64, "training", 8192),
])
def test_every_launch_snippet_uses_only_documented_keys(cat, model, gpu, count, workload, ctx):
    prec = "nf4" if workload == "qlora" else "bf16"
    p = plan_training(cat, cfg(cat, model, gpu, count, prec, workload, ctx))
    assert validate_launch(p.launch) == []


def test_the_launch_validator_rejects_undocumented_keys():
    bad = {"tool": "deepspeed", "config": {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 1,
                                           "gradient_accumulation_steps": 1, "zero_optimisation": {},
                                           "zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}}}
    errors = validate_launch(bad)
    assert "zero_optimisation" in errors and any("offload_param.device" in e for e in errors)
    assert validate_launch({"tool": "megatron", "flags": {"--tensor-parallel-size": 8}}) == ["--tensor-parallel-size"]
    assert all(launchers()[t]["source"]["repo"] for t in ("deepspeed", "torchtitan", "megatron", "torchtune"))


def test_estimate_reports_the_plan_for_training_configs(cat):
    e = estimate(cat, cfg(cat, "llama-3.1-70b", "h100-sxm", 8))
    assert e.fits and e.plan is not None
    assert e.memory_gib["per_gpu"] == pytest.approx(e.plan.per_gpu_gib["total"])
    assert e.throughput["train_tokens_per_s"] == pytest.approx(e.plan.tokens_per_s)
    assert e.to_dict()["plan"]["launch"]["tool"] == "deepspeed"


def test_advice_quotes_the_plans_days_gpu_hours_and_per_gpu_memory():
    from expert import advise

    doc = advise("70b", 5_000_000, workload="training", tokens="2T")
    c = doc["recommendation"]
    p = c["plan"]
    assert p["days"] == pytest.approx(c["train_days"], abs=0.01)
    assert p["gpu_hours"] == pytest.approx(c["train_days"] * 24 * c["gpus"], rel=1e-3)
    assert p["per_gpu_gib"]["total"] <= p["per_gpu_gib"]["available"]
    # Days include the goodput lost to interruptions at that scale: slower than the steady-state rate.
    steady_days = 2e12 / c["estimate"]["throughput"]["train_tokens_per_s"] / 86400
    assert p["goodput"] < 1 and c["train_days"] == pytest.approx(steady_days / p["goodput"], rel=1e-3)


def test_rack_scale_parts_are_weighed_in_whole_racks(cat):
    # An NVL72 is bought by the rack: a cluster of them is 2, 4, 8 ... racks, not the 8-GPU-node powers of two
    # (none of which is a multiple of 72, so only one rack used to be weighed).
    from expert.candidates import counts_for
    from expert.core.policy import load_policy
    from expert.request import build_request

    req = build_request(cat, model="70b", budget=8_000_000, workload="training", tokens=1e12, deadline=30)
    counts = counts_for(cat.gpus["gb200-nvl72"], req, load_policy())
    assert counts[:4] == (72, 144, 216, 288)
    assert all(c % 72 == 0 for c in counts)
    assert 16 in counts_for(cat.gpus["h100-sxm"], req, load_policy())


def test_fp8_searches_as_bf16_where_the_gpu_has_no_fp8_units(cat, monkeypatch):
    # The search reads the precision only as fp32, FP8 on FP8 hardware, or QLoRA's weight bytes: FP8 on an A100
    # shares bf16's search (memo.PLANS), on an H100 it is its own, faster search. Fresh searches agree.
    from expert.estimate import memo

    def rate(gpu, precision):
        return plan_training(cat, cfg(cat, "llama-3.1-8b", gpu, 8, precision, workload="training")).tokens_per_s

    a100 = rate("a100-80gb-sxm", "fp8"), rate("a100-80gb-sxm", "bf16")
    h100 = rate("h100-sxm", "fp8"), rate("h100-sxm", "bf16")
    assert a100[0] == a100[1]
    assert h100[0] > h100[1] * 1.2
    monkeypatch.setenv(memo.NO_MEMO_ENV, "1")
    memo.refresh()
    try:
        assert (rate("a100-80gb-sxm", "fp8"), rate("h100-sxm", "fp8")) == (a100[0], h100[0])
    finally:
        monkeypatch.delenv(memo.NO_MEMO_ENV)
        memo.refresh()


@pytest.mark.parametrize("model,gpu,count,workload,context,batch", [
    ("llama-3.1-70b", "h100-sxm", 8, "finetune", 4096, 1),
    ("llama-3.1-8b", "rtx-4090", 1, "lora", 2048, 2),
    ("llama-3.1-8b", "a100-80gb-sxm", 64, "training", 8192, 1),
    ("llama-3.1-8b", "h100-sxm", 16, "training", 32768, 1),
])
def test_a_search_scores_each_plan_with_the_numbers_of_its_full_evaluation(cat, model, gpu, count, workload,
                                                                           context, batch):
    # The search ranks lightweight scores and builds Plans only for what it reports: each score must be the
    # full evaluation's figures, in the order sorting the full plans gives.
    from expert.estimate.plan import _Fixed, _key, _scored, choose

    c = cfg(cat, model, gpu, count, "nf4" if workload == "qlora" else "bf16", workload, context, batch)
    fx, scored = _scored(cat, c, None, None)
    full = [evaluate(cat, c, s.strategy, s.layout, _Fixed(cat, c)) for s in scored]
    assert len(scored) > 1
    for s, p in zip(scored, full, strict=True):
        assert (s.fits, s.tokens_per_s, s.per_gpu_total, s.host_gib_per_node) == (
            p.fits, p.tokens_per_s, p.per_gpu_gib["total"], p.host_gib_per_node)
        assert s.key == _key(p)
    assert [_key(p) for p in full] == sorted(_key(p) for p in full)
    best, plans = choose(cat, c)
    assert best.to_dict() == full[0].to_dict() and [p.to_dict() for p in plans] == [p.to_dict() for p in full]


def test_long_context_training_weighs_context_parallel_without_data_parallel(cat):
    # 16 GPUs at 32k tokens: a TP x CP layout with DP 1 shards ZeRO over the context ranks; that traffic runs
    # over the context ranks' link (it had no link at all and the search crashed).
    from expert.estimate.plan import _scored

    c = cfg(cat, "llama-3.1-8b", "h100-sxm", 16, workload="training", context=32768)
    _, scored = _scored(cat, c, None, None)
    cp_only = [s for s in scored if s.layout.cp > 1 and s.layout.dp == 1]
    assert cp_only
    p = evaluate(cat, c, cp_only[0].strategy, cp_only[0].layout)
    assert p.links["data"] == p.links["context"] == "nvlink"
    assert plan_training(cat, c, tokens=1e11).fits


@pytest.mark.parametrize("gpu,count", [("rtx-4060-ti-16gb", 4), ("gb200-nvl72", 72)])
def test_a_micro_batch_over_the_published_batch_limit_still_gets_a_plan(cat, gpu, count):
    # 256 x 32k-token sequences per micro-batch: every layout that LoRA runs (data parallel only) exceeds the
    # largest published batch (16M tokens). The fewest data-parallel ranks are weighed and the plan says so; it
    # had no plan at all and `expert advise` crashed with a ValueError.
    c = cfg(cat, "qwen3-8b", gpu, count, workload="lora", context=32768, batch=256)
    p = plan_training(cat, c, tokens=1e8)
    assert not p.fits
    assert any("largest published batch" in n for n in p.notes)
    from expert.estimate.plan import layouts
    assert all(lo.dp * lo.micro_batch * c.context > 16_777_216 for lo in layouts(cat, c, 262144)
               if lo.tp == lo.cp == lo.pp == 1)


@pytest.mark.parametrize("workload", ["lora", "finetune"])
def test_mfu_counts_the_flops_the_step_needs(cat, workload):
    # On one GPU nothing is exposed but compute: MFU x slowdown (recompute) is the hardware's FLOPs share (HFU).
    # A LoRA step computes no weight gradients (4N per token, not 6N): counted at 6N its MFU read 1.5x, over 100 %
    # on a compute-bound plan.
    from expert.estimate.plan import _Fixed

    c = cfg(cat, "llama-3.1-8b", "h100-sxm", 1, workload=workload, context=2048)
    p = plan_training(cat, c)
    assert sum(p.comm_s.values()) == 0 and p.layout.pp == 1
    assert p.mfu * p.slowdown == pytest.approx(_Fixed(cat, c).hfu, rel=1e-9)
    assert 0 < p.mfu < 1


def test_the_bounded_search_chooses_the_full_searchs_plan_measuring_fewer_points(cat, monkeypatch):
    # plan_training(worded=False), the estimator's search, skips the points whose rank key bounded from below
    # cannot beat the best measured so far. Over every GPU x count the estimator weighs for a spread of models,
    # workloads, contexts and micro-batches (those that fit, those that do not, multi-node and over-batch
    # ones), it must choose _search's plan, figure for figure; and it must measure fewer points.
    from expert.estimate import plan as plan_mod

    measured = {"n": 0}
    real = plan_mod._measure

    def counting(*a):
        measured["n"] += 1
        return real(*a)

    monkeypatch.setattr(plan_mod, "_measure", counting)
    cases = [("llama-3.1-8b", "lora", 2048, 1), ("llama-3.1-70b", "finetune", 4096, 1),
             ("llama-2-13b", "qlora", 4096, 4), ("llama-3.1-8b", "training", 8192, 1),
             ("llama-3.1-70b", "training", 4096, 2), ("mixtral-8x7b", "finetune", 2048, 1),
             ("qwen3-8b", "lora", 32768, 256)]
    gpus = ["rtx-4090", "rtx-4060-ti-16gb", "a100-80gb-sxm", "h100-sxm", "mi300x", "gb200-nvl72", "l40s"]
    full_n = bounded_n = compared = 0
    for model, workload, context, batch in cases:
        for gid in gpus:
            g = cat.gpus[gid]
            for count in (1, 2, 8, 16, 64) if g.gpus_per_unit <= 1 else (g.gpus_per_unit, 2 * g.gpus_per_unit):
                c = cfg(cat, model, gid, count, "nf4" if workload == "qlora" else "bf16", workload, context, batch)
                measured["n"] = 0
                full = plan_mod._search(cat, c, None, None)[0]
                full_n += measured["n"]
                measured["n"] = 0
                bounded = plan_mod._best(cat, c)
                bounded_n += measured["n"]
                assert bounded.to_dict() == full.to_dict(), (model, workload, gid, count)
                compared += 1
    assert compared > 150 and bounded_n < full_n / 2


def test_a_plan_made_for_its_figures_alone_shows_the_worded_plan(cat):
    from expert.estimate.memo import PLANS

    PLANS.clear()
    c = cfg(cat, "llama-3.1-70b", "h100-sxm", 16, workload="training")
    quiet = plan_training(cat, c, 1e10, worded=False)
    assert quiet.notes == [] and quiet.considered == []
    worded = plan_training(cat, c, 1e10)
    assert worded.notes and worded.considered and worded.launch
    assert quiet.to_dict() == worded.to_dict() and quiet.detailed().notes == worded.notes
    assert (quiet.tokens_per_s, quiet.days, quiet.goodput, quiet.cost) == (
        worded.tokens_per_s, worded.days, worded.goodput, worded.cost)
