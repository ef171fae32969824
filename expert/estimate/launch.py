"""Launch snippets that match a training plan: a DeepSpeed JSON config, a torchtitan / torchtune command, or
Megatron-LM arguments. Only keys that facts/launchers.yaml lists as documented by the tool are written."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog
from ..core.paths import data_dir
from ..core.yamlio import load_yaml_file, plain
from .config import Config
from .engines import constant

if TYPE_CHECKING:
    from .plan import Plan

_BUNDLED = Path(__file__).resolve().parent.parent.parent / "facts" / "launchers.yaml"


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    return plain(load_yaml_file(Path(path)))


def launchers() -> dict[str, Any]:
    """facts/launchers.yaml of the active facts directory, else the bundled copy (a team's own catalog may
    carry only GPUs and models)."""
    own = data_dir("facts") / "launchers.yaml"
    return _load(str(own if own.is_file() else _BUNDLED))


def _deepspeed(cfg: Config, p: Plan) -> dict[str, Any]:
    st, lo = p.strategy, p.layout
    stage = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "hsdp": 3}[st.sharding]
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if st.offload != "none":
        zero["offload_optimizer"] = {"device": st.offload_device, "pin_memory": True}
        if st.offload_device == "nvme":
            zero["offload_optimizer"]["nvme_path"] = "/local_nvme"
    if st.offload == "optimizer+params":
        zero["offload_param"] = {"device": st.offload_device, "pin_memory": True}
        if st.offload_device == "nvme":
            zero["offload_param"]["nvme_path"] = "/local_nvme"
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    doc: dict[str, Any] = {
        "train_batch_size": lo.micro_batch * lo.grad_accum * cfg.count,
        "train_micro_batch_size_per_gpu": lo.micro_batch,
        "gradient_accumulation_steps": lo.grad_accum,
        "bf16": {"enabled": cfg.precision.id != "fp32"},
        "gradient_clipping": 1.0,
        "zero_optimization": zero,
    }
    if st.optimizer == "adamw":
        doc["optimizer"] = {"type": "AdamW", "params": {"lr": 2e-5, "weight_decay": 0.1}}
    return doc


def launch_for(cat: Catalog, cfg: Config, p: Plan) -> dict[str, Any]:
    st, lo = p.strategy, p.layout
    node = int(min(cfg.count, constant(cat, "gpus_per_node")))
    nodes = max(1, cfg.count // node)
    rdzv = "--rdzv_backend c10d --rdzv_endpoint $MASTER_ADDR:29500" if nodes > 1 else ""
    if st.framework == "deepspeed":
        ds = _deepspeed(cfg, p)
        hosts = f"--num_nodes {nodes} --num_gpus {node} --hostfile hostfile" if nodes > 1 else f"--num_gpus {node}"
        gc = "" if st.checkpointing == "none" else " --gradient_checkpointing"
        note = ("offload_optimizer.device=nvme needs the nvme_path mounted on every node"
                if st.offload_device == "nvme" and st.offload != "none" else
                "train.py calls deepspeed.initialize(config=ds_config.json); "
                + ("8-bit AdamW is the client optimizer (bitsandbytes), so the config names none"
                   if st.optimizer != "adamw" else "AdamW from the config (DeepSpeedCPUAdam when offloaded)"))
        return {"tool": "deepspeed", "config": ds,
                "command": f"deepspeed {hosts} train.py --deepspeed ds_config.json{gc}", "note": note}
    if st.framework == "torchtune":
        single = cfg.count == 1
        adapters = cfg.workload in ("lora", "qlora")
        recipe = ("lora_finetune" if adapters else "full_finetune") + ("_single_device" if single else "_distributed")
        overrides = {"batch_size": lo.micro_batch, "gradient_accumulation_steps": lo.grad_accum,
                     "enable_activation_checkpointing": st.checkpointing != "none",
                     "enable_activation_offloading": st.checkpointing == "full+offload", "dtype": "bf16",
                     "tokenizer.max_seq_len": cfg.context}
        if st.optimizer == "paged-adamw-8bit":
            overrides.update({"optimizer._component_": "bitsandbytes.optim.PagedAdamW8bit", "optimizer_in_bwd": True,
                              "gradient_accumulation_steps": 1})
        if not single and not adapters:
            overrides["fsdp_cpu_offload"] = st.offload != "none"
        if adapters:
            overrides["model.lora_rank"] = int(constant(cat, "lora_rank"))
        args = " ".join(f"{k}={str(v) if not isinstance(v, bool) else str(v)}" for k, v in overrides.items())
        nproc = "" if single else f"--nproc_per_node {node} "
        return {"tool": "torchtune", "recipe": recipe, "overrides": overrides,
                "command": f"tune run {nproc}{recipe} --config <model config> {args}"}
    if st.framework == "torchtitan":
        shard = lo.dp if st.sharding == "zero3" else (min(lo.dp, max(1, node // (lo.tp * lo.cp)))
                                                      if st.sharding == "hsdp" else 1)
        replicate = lo.dp // shard
        flags = {"--parallelism.tensor_parallel_degree": lo.tp, "--parallelism.pipeline_parallel_degree": lo.pp,
                 "--parallelism.context_parallel_degree": lo.cp,
                 "--parallelism.data_parallel_shard_degree": shard,
                 "--parallelism.data_parallel_replicate_degree": replicate,
                 "--training.local_batch_size": lo.micro_batch * lo.grad_accum if lo.pp > 1 else lo.micro_batch,
                 "--training.global_batch_size": lo.micro_batch * lo.grad_accum * lo.dp,
                 "--training.seq_len": cfg.context,
                 "--activation_checkpoint.mode": "selective" if st.checkpointing == "selective" else (
                     "none" if st.checkpointing == "none" else "full")}
        if st.checkpointing == "selective":
            flags["--activation_checkpoint.selective_ac_option"] = "2"
        if lo.pp > 1:
            flags["--parallelism.pipeline_parallel_microbatch_size"] = lo.micro_batch
            if lo.virtual_stages > 1:
                flags["--parallelism.pipeline_parallel_schedule"] = "Interleaved1F1B"
        if st.offload != "none":
            flags["--training.enable_cpu_offload"] = True
        torchrun = {"--nnodes": nodes, "--nproc_per_node": node}
        cmd = (f"torchrun --nnodes {nodes} --nproc_per_node {node} {rdzv} -m torchtitan.train "
               "--job.config_file <model>.toml " + " ".join(f"{k} {v}" for k, v in flags.items()))
        return {"tool": "torchtitan", "flags": flags, "torchrun": torchrun, "command": " ".join(cmd.split())}
    m = cfg.model
    flags = {"--tensor-model-parallel-size": lo.tp, "--pipeline-model-parallel-size": lo.pp,
             "--context-parallel-size": lo.cp, "--micro-batch-size": lo.micro_batch,
             "--global-batch-size": lo.micro_batch * lo.grad_accum * lo.dp, "--seq-length": cfg.context,
             "--max-position-embeddings": max(cfg.context, m.max_context), "--num-layers": m.layers,
             "--hidden-size": m.hidden_size, "--ffn-hidden-size": m.intermediate_size,
             "--num-attention-heads": m.attention_heads, "--group-query-attention": True,
             "--swiglu": True, "--untie-embeddings-and-output-weights": not m.tied_embeddings,
             "--use-rotary-position-embeddings": True, "--normalization": "RMSNorm", "--disable-bias-linear": True,
             "--use-distributed-optimizer": True, "--overlap-grad-reduce": True, "--overlap-param-gather": True,
             "--bf16": True}
    if lo.tp > 1:
        flags["--sequence-parallel"] = True
    if cfg.precision.id == "fp8":
        flags["--fp8-hybrid"] = True
    if st.checkpointing != "none":
        flags["--recompute-granularity"] = "selective" if st.checkpointing == "selective" else "full"
    if lo.virtual_stages > 1:
        flags["--num-layers-per-virtual-pipeline-stage"] = max(1, m.layers // (lo.pp * lo.virtual_stages))
    parts = []
    for k, v in flags.items():
        if v is True:
            parts.append(k)
        elif v is not False:
            parts.append(f"{k} {v}")
    cmd = f"torchrun --nnodes {nodes} --nproc_per_node {node} {rdzv} pretrain_gpt.py " + " ".join(parts)
    return {"tool": "megatron", "flags": flags, "torchrun": {"--nnodes": nodes, "--nproc_per_node": node},
            "command": " ".join(cmd.split()),
            "note": "--num-query-groups (GQA groups) and the tokenizer/data flags are set per model"}


def validate_launch(launch: dict[str, Any]) -> list[str]:
    """Every key of a launch snippet that its tool does not document (facts/launchers.yaml); [] when valid."""
    docs = launchers()
    tool = launch["tool"]
    spec = docs[tool]
    bad: list[str] = []
    if tool == "deepspeed":
        cfg = launch["config"]
        bad += [k for k in cfg if k not in spec["top_level"]]
        for section in ("bf16", "optimizer", "zero_optimization"):
            bad += [f"{section}.{k}" for k in cfg.get(section, {}) if k not in spec[section]]
        zero = cfg.get("zero_optimization", {})
        if zero.get("stage") not in spec["stages"]:
            bad.append(f"zero_optimization.stage={zero.get('stage')}")
        for off in ("offload_optimizer", "offload_param"):
            if off in zero:
                bad += [f"{off}.{k}" for k in zero[off] if k not in spec[off]]
                dev = zero[off].get("device")
                allowed = (spec["offload_optimizer_stages"].get(dev, []) if off == "offload_optimizer"
                           else spec["offload_param_stages"])
                if dev not in spec["devices"] or zero.get("stage") not in allowed:
                    bad.append(f"{off}.device={dev} at stage {zero.get('stage')}")
        if cfg["train_batch_size"] % (cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"]):
            bad.append("train_batch_size != micro x accumulation x GPUs")
    elif tool == "torchtune":
        bad += [k for k in launch["overrides"] if k not in spec["keys"]]
        if launch["recipe"] not in spec["recipes"]:
            bad.append(launch["recipe"])
    else:
        bad += [k for k in launch["flags"] if k not in spec["flags"]]
        bad += [k for k in launch.get("torchrun", {}) if k not in spec["torchrun_flags"]]
        if tool == "torchtitan":
            mode = launch["flags"].get("--activation_checkpoint.mode")
            if mode not in spec["activation_checkpoint_modes"]:
                bad.append(f"--activation_checkpoint.mode={mode}")
    return bad


__all__ = ["launch_for", "launchers", "validate_launch"]
