# ruff: noqa: E501  (the generated markdown table rows are long by nature)
"""docs/estimator.md states every engine default and physical parameter that facts/efficiency.yaml holds.

The engines section of the document is generated from the calibration file; this test fails when the two drift.
Regenerate with: python tests/test_estimator_doc.py > /tmp/section.md and paste it over the section.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "estimator.md"


def engines_section() -> str:
    """The docs/estimator.md engines section, generated from facts/efficiency.yaml (and the sources it cites)."""
    e = yaml.safe_load(open(ROOT / 'facts' / 'efficiency.yaml', encoding='utf-8'))
    own = e['sources']
    out = []
    p = out.append
    p("## Engines: defaults and physical parameters\n")
    p("`--engine` (on `estimate` and `advise`) accepts llama.cpp, vllm, sglang, tensorrt-llm, transformers, exllamav2, mlc and")
    p("mlx (`expert/estimate/engines.py` `ENGINES`). Without it, `pick_engine` takes what a practitioner would run:\n")
    p("| GPU / workload | default engine | why |")
    p("|---|---|---|")
    p("| any GPU, training or fine-tuning (full, LoRA, QLoRA) | PyTorch, in the training plan's framework (DeepSpeed, torchtitan, Megatron-LM, torchtune) | `--engine` does not apply to training; see Training plans |")
    p("| Apple Silicon (Metal), any precision | llama.cpp | vLLM and TensorRT-LLM do not run on Metal |")
    p("| any GPU, a GGUF precision (q8_0, q6_k ... iq2_xs) | llama.cpp | GGUF is llama.cpp's format |")
    p("| NVIDIA (CUDA) or AMD (ROCm), any other precision (fp16, bf16, fp8, int8, int4, awq, gptq, nvfp4 ...) | vLLM | the common serving engine: CUDA graphs, continuous batching up to `max_num_seqs` 256 |")
    p("")
    p("Provenance of an engine's figures: `derived` where its own entry (below) is used, `measured` where a validation record")
    p("has the configuration; an engine with no entry of its own on that GPU class and no cited measurement in its `engines`")
    p("line (SGLang, exllamav2, MLC; MLX for prefill) runs on the engine it is `like` and its figures say `assumed`: a default that a")
    p("`--facts-dir` copy of `efficiency.yaml` with a measured entry for it overrides.\n")
    p("Each engine's execution mode, fallback and default maximum batch (`facts/efficiency.yaml` `engines`):\n")
    p("| engine | execution | falls back to | max batch | runs on | sources | basis |")
    p("|---|---|---|---|---|---|---|")
    for k, v in e['engines'].items():
        p(f"| {k} | {v['execution']} | {v.get('like') or 'vLLM where it has no entry'} | {v['max_batch']:g} | {', '.join(v['runs_on'])} | {', '.join(v['sources'])} | {v['basis']} |")
    p("")
    p("Decode (`decode`): f_bw, the achievable fraction of the datasheet bandwidth; τ, host/launch cost per layer; a cost per")
    p("step; f_c, the fraction of peak FLOPS when a step is compute-bound. Looked up as engine-stack-architecture, then")
    p("engine-stack-memory system (hbm, gddr, unified), then engine-stack, then the same for the engine it is `like`, then vLLM's:\n")
    p("| entry | f_bw | τ (µs/layer) | step (µs) | f_c | sources | basis |")
    p("|---|---|---|---|---|---|---|")
    for k, v in e['decode'].items():
        p(f"| {k} | {v['bandwidth_fraction']:g} | {v['layer_overhead_us']:g} | {v.get('step_overhead_us', 0):g} | {v['compute_fraction']:g} | {', '.join(v['sources'])} | {v['basis']} |")
    p("")
    p("Prefill (`prefill`): MFU, the fraction of the peak of the precision's compute path; whether the engine's GEMMs")
    p("accumulate in FP16/INT32 (full rate on GeForce):\n")
    p("| entry | MFU | FP16 accumulate | sources | basis |")
    p("|---|---|---|---|---|")
    for k, v in e['prefill'].items():
        p(f"| {k} | {v['mfu']:g} | {'yes' if v['fp16_accumulate'] else 'no'} | {', '.join(v['sources'])} | {v['basis']} |")
    p("")
    used = set()
    for sec in ('engines', 'decode', 'prefill'):
        for v in e[sec].values():
            used |= set(v['sources'])
    p("The measurements and documents these entries cite (quotes in `facts/efficiency.yaml` `sources`):\n")
    for k in sorted(used):
        if k not in own:
            p(f"- `{k}`: defined (with its quote) in another catalog under facts/")
            continue
        src = own[k]
        addr = src.get('url') or (f"{src.get('repo')} {src.get('path')}" if src.get('repo') else None)
        p(f"- `{k}`: {src.get('title', '')}" + (f", {addr}" if addr else "") + (f", {src['date']}" if src.get('date') else ""))
    return "\n".join(out)


def test_the_engines_section_matches_the_calibration_file():
    assert engines_section() in DOC.read_text(encoding="utf-8")


def test_every_engine_choice_and_default_is_documented():
    from expert.estimate import ENGINES

    text = DOC.read_text(encoding="utf-8")
    for engine in ENGINES:
        assert f"| {engine} |" in text, engine
    for default in ("| llama.cpp |", "| vLLM |", "PyTorch"):
        assert default in text


if __name__ == "__main__":
    print(engines_section())
