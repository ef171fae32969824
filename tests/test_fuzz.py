"""Bounded fuzzing of the request parser and the YAML loaders: only ExpertError may escape."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expert.catalog import load_catalog
from expert.core.errors import ExpertError
from expert.core.yamlio import load_yaml_text
from expert.request import build_request, parse_number
from expert.rulelang import load_rules
from expert.store import load_all

ROOT = Path(__file__).resolve().parent.parent
CAT, _ = load_all()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@FUZZ
@given(st.one_of(text, st.floats(allow_nan=True, allow_infinity=True), st.integers()))
def test_number_parser_accepts_or_refuses_cleanly(raw):
    try:
        v = parse_number(raw, "--budget")
    except ExpertError:
        return
    assert v > 0 and v == v and v != float("inf")


@FUZZ
@given(model=st.one_of(text, st.sampled_from(sorted(CAT.models) + ["7b", "70b"])),
       budget=st.one_of(text, st.floats(allow_nan=True)), workload=text, precision=text, context=text,
       batch=text, currency=text, region=text)
def test_request_builder_never_raises_anything_but_expert_error(model, budget, workload, precision, context,
                                                               batch, currency, region):
    try:
        build_request(CAT, model=model, budget=budget, workload=workload, precision=precision, context=context,
                      batch=batch, currency=currency, region=region)
    except ExpertError:
        pass


@FUZZ
@given(st.text(max_size=300))
def test_yaml_loader_never_raises_anything_but_expert_error(doc):
    try:
        load_yaml_text(doc, "fuzz.yaml")
    except ExpertError:
        pass


def _mutate(text_in: str, rng: random.Random) -> str:
    lines = text_in.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.choice(["drop", "dup", "garble", "retype", "indent"])
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)] + rng.choice([":", "[", "{", "'", " -", "\t"])
        elif op == "retype":
            lines[i] = lines[i].replace(": ", ": [", 1) if ": " in lines[i] else lines[i] + ": null"
        else:
            lines[i] = " " + lines[i]
    return "\n".join(lines) + "\n"


CASES = [("facts", n) for n in ("gpus.yaml", "models.yaml", "precisions.yaml", "energy.yaml", "efficiency.yaml")] + [
    ("rules", n) for n in ("model_size.yaml", "precision.yaml", "ecosystem.yaml", "scalability.yaml")]


@pytest.mark.parametrize("folder, name", CASES, ids=[f"{f}/{n}" for f, n in CASES])
def test_mutated_data_files_fail_cleanly(tmp_path, folder, name):
    rng = random.Random(name)
    original = (ROOT / folder / name).read_text()
    load = load_catalog if folder == "facts" else (lambda d: load_rules(d, probe=True))
    for _ in range(25):
        d = tmp_path / folder
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(ROOT / folder, d)
        (d / name).write_text(_mutate(original, rng))
        try:
            load(d)
        except ExpertError:
            pass
