"""The estimator stays calibrated against published measurements (benchmarks/accuracy.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _accuracy():
    spec = importlib.util.spec_from_file_location("accuracy", ROOT / "benchmarks" / "accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["accuracy"] = mod  # dataclasses look their module up while the body executes
    spec.loader.exec_module(mod)
    return mod


def test_validation_set_is_large_and_sourced():
    from expert.core.yamlio import load_yaml_file

    records = load_yaml_file(ROOT / "tests" / "validation" / "measurements.yaml")["records"]
    assert len(records) >= 40
    for r in records:
        assert r["source"]["title"] and (r["source"].get("url") or r["source"].get("repo")), r["id"]
        assert r.get("quote"), r["id"]


def test_median_errors_meet_the_targets(cat):
    acc = _accuracy()
    summary = acc.summary(acc.score_all(cat))
    assert summary["weights_gib"][1] <= 5
    assert summary["decode_tokens_per_s"][1] <= 20
    assert summary["prefill_tokens_per_s"][1] <= 30
    assert summary["train_tokens_per_s"][1] <= 30
    # Peak-memory records mix recipes (chunked loss, LoRA targets, offload); see the README.
    assert summary["memory_gib"][1] <= 10
