"""Every JSON document carries schema_version and conforms to the shipped schema (expert/resources/schema)."""

from __future__ import annotations

import json

import pytest

from expert.core.docschema import SCHEMA_PATH, SCHEMA_VERSION, errors, load_schema, validate

from .conftest import ROOT, run_cli


def _json(*args: str) -> dict:
    res = run_cli(*args)
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_the_schema_is_shipped_and_names_every_document():
    assert SCHEMA_PATH.is_file()
    schema = load_schema()
    assert set(schema["$defs"]) >= {"advice", "estimate", "compare", "sweep_row", "error"}
    assert schema["$defs"]["schema_version"]["const"] == SCHEMA_VERSION
    assert '"expert.resources" = ["schema/*.json"]' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("args", [
    ["--budget", "20000", "--model", "13b", "--top", "3"],
    ["--budget", "5000", "--model", "405b"],  # nothing fits
    ["--budget", "150000", "--model", "70b", "--workload", "finetune", "--currency", "EUR"],
])
def test_advise_json_conforms(args):
    doc = _json("advise", *args, "--format", "json")
    assert doc["schema_version"] == SCHEMA_VERSION and doc["currency"] == doc["request"]["currency"]
    assert validate(doc, "advice") == []


def test_estimate_compare_and_sweep_rows_conform(tmp_path):
    est = _json("estimate", "--model", "8b", "--gpu", "l40s", "--currency", "CNY", "--format", "json")
    assert est["currency"] == "CNY" and validate(est, "estimate") == []
    cmp = _json("compare", "l40s@fp8", "2xl40s@fp8", "--budget", "40k", "--model", "13b", "--format", "json")
    assert validate(cmp, "compare") == []
    path = tmp_path / "r.csv"
    path.write_text("model,budget\n13b,20k\nfoo,1\n")
    rows = [json.loads(x) for x in run_cli("sweep", str(path), "--jobs", "1").out.splitlines()]
    assert [validate(r, "sweep_row") for r in rows] == [[], []]


@pytest.mark.parametrize("args", [
    ["advise", "--budget", "x", "--model", "13b", "--format", "json"],
    ["estimate", "--model", "8b", "--gpu", "h900", "--format=json"],
    ["compare", "l40s", "--budget", "1", "--model", "13b", "--format", "json"],
    ["advise", "--budget", "1", "--model", "13b", "--bogus", "--format", "json"],
])
def test_errors_with_format_json_are_a_json_object_on_stderr(args):
    res = run_cli(*args)
    assert res.code == 2 and res.out == ""
    doc = json.loads(res.err)
    assert validate(doc, "error") == [] and doc["error"] and "expert: error" not in doc["error"]
    text = run_cli(*[a for a in args if a not in ("--format", "json", "--format=json")])
    assert text.code == 2 and ": error: " in text.err and doc["error"] in text.err


def test_the_validator_reports_what_breaks():
    doc = _json("advise", "--budget", "20000", "--model", "13b", "--format", "json")
    del doc["recommendation"]["capex"]
    doc["currency"] = "usd"
    doc["schema_version"] = "0"
    found = "\n".join(validate(doc, "advice"))
    assert "$.recommendation" in found and "'capex'" in found
    assert "$.currency" in found and "$.schema_version" in found
    assert errors({"error": "x", "schema_version": SCHEMA_VERSION, "more": 1}, {"$ref": "#/$defs/error"})
