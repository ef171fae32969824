"""Examples shown at the end of every command's --help (the README's Usage section, command by command)."""

from __future__ import annotations

import click

EXAMPLES: dict[str, list[str]] = {
    "expert": [
        "expert advise --budget 20000 --model meta-llama/Llama-2-13b-hf --top 5",
        "expert compare 1xrtx-pro-6000-maxq@fp8 1xa100-80gb-pcie@bf16 --budget 20k --model 13b",
        "expert sweep requests.csv --format csv --output results.csv",
        "python -m expert estimate --model 70b --gpu H100-SXM --count 2 --precision fp8",
    ],
    "expert advise": [
        "expert advise --budget 20000 --model 13b",
        "expert advise --budget 20k --model meta-llama/Llama-2-13b-hf --top 5 --exclude rtx-4090",
        "expert advise --budget 30k --model 8b --context 32K --prompt-tokens 2K --only l40s,h100-pcie",
        "expert advise --budget 60000 --model 70b --workload qlora --tokens 200M",
        "expert advise --budget 20000 --model 13b --why-not RTX-4090",
        "expert advise --budget 20000 --model 13b --format markdown --output justification.md",
        "expert advise --budget 20000 --model ./my-model/config.json --format json",
    ],
    "expert estimate": [
        "expert estimate --model 70b --gpu h100-sxm --count 2 --precision fp16 --format json",
        "expert estimate --model 7b --gpu RTX-4090 --precision q4_0 --engine llama.cpp --context 8K",
        "expert estimate --model 8b --gpu l40s --precision fp8 --users max --prompt-tokens 2K",
        "expert estimate --model 70b --gpu h100-sxm --count 8 --precision bf16 --workload finetune --tokens 1B",
    ],
    "expert compare": [
        "expert compare 2xh100-sxm@fp8 4xl40s@fp8 --budget 100k --model 70b",
        "expert compare rtx-pro-6000-maxq@fp8 A100-80GB-PCIE@bf16 --budget 20000 --model meta-llama/Llama-2-13b-hf",
        "expert compare 8xh100-sxm 8xmi300x --budget 2M --model 70b --workload training --tokens 1T --format json",
    ],
    "expert sweep": [
        "expert sweep requests.csv --output results.jsonl",
        "expert sweep requests.yaml --format csv --output results.csv --jobs 4",
    ],
    "expert catalog": ["expert catalog gpus", "expert catalog models --format json", "expert catalog precisions"],
    "expert rules": ["expert rules list --factor precision", "expert rules check", "expert rules snapshots --update"],
    "expert rules list": ["expert rules list", "expert rules list --factor power_cost --format json"],
    "expert rules show": ["expert rules show power_cost/over-budget"],
    "expert rules coverage": ["expert rules coverage"],
    "expert rules check": ["expert rules check", "GPU_EXPERT_RULES=./team-rules expert rules check"],
    "expert rules docs": ["expert rules docs", "expert rules docs --check"],
    "expert rules snapshots": ["expert rules snapshots", "expert rules snapshots --update"],
    "expert audit": ["expert audit --base main", "expert audit --base HEAD~1 --format json --fail-on-change"],
}


def add_examples(cli: click.Group) -> None:
    """Append an Examples block to the help of every command that has one in EXAMPLES."""

    def walk(cmd: click.Command, path: str) -> None:
        lines = EXAMPLES.get(path)
        if lines and "Examples:" not in (cmd.help or "") + (cmd.epilog or ""):
            cmd.epilog = "\b\nExamples:\n" + "\n".join(f"  {x}" for x in lines)
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")

    walk(cli, "expert")
