"""Draw random numeric catalog facts for a manual spot check against their cited sources.

Every numeric leaf of every GPU in facts/gpus.yaml (memory, bandwidth, TFLOPS per precision, power, PCIe,
link bandwidth, slots, prices, ...) and of every model in facts/models.yaml (params, layers, hidden size,
heads, vocab, context, experts, ...) is one fact. The script draws N distinct facts with a seeded
random.Random (the seed is printed, so a sample can be drawn again) and prints for each the entity,
the field, the catalog value and the sources the catalog resolves for it (the field's own key in the
entry's `sources:`, else its group's key: `tflops`, `interconnect`, `architecture`, ...), with title
and address. The check itself is done by hand: open each address and compare (docs/spot-check.md).

Run: python benchmarks/spotcheck.py [--seed 20261201] [-n 40]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

from expert.catalog import Catalog, load_catalog
from expert.catalog.provenance import fact_sources
from expert.core.paths import data_dir
from expert.core.schema import numeric_paths
from expert.core.yamlio import load_yaml_file

DEFAULT_SEED = 20261201
MODEL_ARCH = ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size",
              "vocab_size", "max_context", "experts", "active_experts", "params", "shared_experts",
              "expert_intermediate_size", "shared_expert_intermediate_size", "moe_layers", "norms_per_layer",
              "local_attention", "vision_params")


@dataclass(frozen=True)
class Fact:
    kind: str  # gpu | model
    entity: str  # entry id
    field: str  # dotted path inside the entry
    value: float
    sources: tuple[str, ...]  # source ids the catalog resolves for the field


def _get(entry: dict, path: str) -> float:
    value = entry
    for key in path.split("."):
        value = value[key]
    return value


def _model_sources(entry: dict, path: str) -> tuple[str, ...]:
    """Like provenance.fact_sources, plus the models' `architecture` group (load._check_sourced)."""
    src = entry.get("sources") or {}
    head = path.split(".")[0]
    found = src.get(path) or src.get(head)
    if not found and head in MODEL_ARCH:
        found = src.get("architecture")
    return tuple(found or ())


def population(cat: Catalog) -> list[Fact]:
    """Every numeric fact of the GPU and model catalogs, in catalog order."""
    facts = [Fact("gpu", g.id, p, _get(g.raw, p), fact_sources(g, p))
             for g in cat.gpus.values() for p in numeric_paths(g.raw)]
    doc = load_yaml_file(data_dir("facts") / "models.yaml", "facts/models.yaml")
    facts += [Fact("model", m["id"], p, _get(m, p), _model_sources(m, p))
              for m in doc["models"] for p in numeric_paths(m)]
    return facts


def draw(cat: Catalog, n: int, seed: int) -> list[Fact]:
    """N distinct facts, the same ones for the same seed and catalog."""
    facts = population(cat)
    return random.Random(seed).sample(facts, min(n, len(facts)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("-n", type=int, default=40)
    args = ap.parse_args(argv)
    cat = load_catalog()
    facts = draw(cat, args.n, args.seed)
    print(f"seed {args.seed}: {len(facts)} of {len(population(cat))} numeric facts (catalog {cat.digest})")
    for i, f in enumerate(facts, 1):
        print(f"\n{i:2d}. {f.kind} {f.entity}  {f.field} = {f.value}")
        for sid in f.sources:
            src = cat.sources.get(sid)
            if src is None:
                print(f"    [{sid}] (not defined)")
                continue
            print(f"    [{sid}] {src.cite()} [{src.verification}]\n        {src.address() or '(no address)'}")
        if not f.sources:
            print("    (no source)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
