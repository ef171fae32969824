"""benchmarks/spotcheck.py draws distinct numeric facts, the same ones for the same seed, each with its sources."""

from __future__ import annotations

from pathlib import Path

from .conftest import benchmark_module

ROOT = Path(__file__).resolve().parent.parent


def _spotcheck():
    return benchmark_module("spotcheck")


def test_draw_is_distinct_deterministic_and_sourced(capsys):
    from expert.catalog import load_catalog

    sc, cat = _spotcheck(), load_catalog()
    first = sc.draw(cat, 40, 7)
    assert first == sc.draw(cat, 40, 7) != sc.draw(cat, 40, 8)
    assert len({(f.entity, f.field) for f in first}) == 40
    assert {f.kind for f in sc.population(cat)} == {"gpu", "model"}
    assert all(f.sources and all(s in cat.sources for s in f.sources) for f in first)
    assert sc.main(["--seed", "7", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 7: 3 of ") and out.count("\n 1. ") == 1
