"""`expert sweep`: many requests from CSV / YAML / JSONL, one output line each, bad rows reported, never fatal."""

from __future__ import annotations

import csv
import io
import json

from expert.cli import advise as advise_cmd
from expert.cli.requestopts import option_names
from expert.cli.sweep import run_sweep

from .conftest import run_cli

# Ten distinct requests (serving, dev, fine-tuning, training; three currencies; K suffixes) and bad rows.
GOOD = [
    "13b,20k,,,,", "70b,150k,inference,8K,,", "8b,3000,dev,,,", "meta-llama/Llama-2-7b-hf,10000,,,,",
    "70b,60000,qlora,,,", "13b,150000,,,CNY,china", "8b,30k,inference,32K,EUR,eu", "70b,1M,training,,,",
    "405b,5000,,,,", "34b,40k,inference,,,us",
]
BAD = ["foo,1k,,,,", "13b,-5,,,,", "13b,20k,nonsense,,,", "13b,20k,,9999999999,,", "13b,20k,,,XYZ,"]


def _csv(tmp_path, n=50):
    rows = [(GOOD + BAD)[i % (len(GOOD) + len(BAD))] for i in range(n)]
    path = tmp_path / "requests.csv"
    path.write_text("model,budget,workload,context,currency,region\n" + "\n".join(rows) + "\n")
    return path, rows


def test_sweep_of_a_50_row_csv_writes_one_line_per_row_in_order(tmp_path):
    path, rows = _csv(tmp_path)
    res = run_cli("sweep", str(path), "--jobs", "2")
    assert res.code == 0 and res.err == ""  # stderr is no terminal: no progress line
    lines = [json.loads(line) for line in res.out.splitlines()]
    assert [x["row"] for x in lines] == list(range(1, 51))
    assert all(x["schema_version"] == "1.0" for x in lines)
    for x, raw in zip(lines, rows, strict=True):
        assert (x["error"] is None) == (raw in GOOD), (raw, x["error"])
        if raw in GOOD:
            assert x["capex"] > 0 and x["currency"] and x["delivers"] and x["presented"]
    errors = {x["input"]["model"] + x["input"]["budget"]: x["error"] for x in lines if x["error"]}
    assert "unknown model 'foo'" in errors["foo1k"] and "--budget" in errors["13b-5"]
    # the same numbers as advise for the same request
    one = json.loads(run_cli("advise", "--budget", "150k", "--model", "70b", "--context", "8K",
                             "--format", "json").out)
    assert lines[1]["pick"] == one["recommendation"]["label"] and lines[1]["capex"] == one["recommendation"]["capex"]
    assert lines[1]["unit_cost"] == one["decision"]["unit_cost"]
    over = lines[8]  # 405b on 5,000 USD: nothing fits, the cheapest that works is shown as such
    assert over["pick"] is None and over["nothing_fits_budget"] and over["presented"] == "cheapest_over_budget"
    assert over["capex"] > 5000


def test_sweep_csv_output_and_file(tmp_path):
    path = tmp_path / "requests.csv"
    path.write_text("model,budget,workload,context,currency,region\n" + "\n".join([GOOD[0], BAD[0], GOOD[0]]) + "\n")
    out = tmp_path / "out.csv"
    res = run_cli("sweep", str(path), "--format", "csv", "--output", str(out), "--jobs", "1")
    assert res.code == 0 and res.out == ""
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(table) == 3 and table[0]["pick"] and table[0]["capex"] and table[0] == {**table[2], "row": "1"}
    assert table[1]["error"].startswith("--model: unknown model") and table[1]["pick"] == ""


def test_sweep_reads_yaml_and_jsonl_with_option_spellings(tmp_path):
    yml = tmp_path / "r.yaml"
    yml.write_text("requests:\n  - {model: 13b, budget: 20000, prompt-tokens: 2K, only: L40S}\n"
                   "  - {model: 8b, budget: 3000, workload: dev, bogus: 1}\n  - just text\n")
    lines = [json.loads(x) for x in run_cli("sweep", str(yml)).out.splitlines()]
    assert lines[0]["gpu"] == "l40s" and lines[0]["error"] is None
    assert "unknown key 'bogus'" in lines[1]["error"] and "mapping" in lines[2]["error"]
    jl = tmp_path / "r.jsonl"
    jl.write_text('{"model": "13b", "budget": 20000, "max_desk_cards": 2}\n{not json\n\n{"model": "7b"}\n')
    lines = [json.loads(x) for x in run_cli("sweep", str(jl)).out.splitlines()]
    assert [x["row"] for x in lines] == [1, 2, 3]
    assert lines[0]["error"] is None and "not valid JSON" in lines[1]["error"]
    assert "--budget is missing" in lines[2]["error"]
    bad = tmp_path / "r.txt"
    bad.write_text("x")
    res = run_cli("sweep", str(bad))
    assert res.code == 2 and "unknown file type" in res.err


def test_progress_is_reported_per_request_and_duplicates_run_once():
    seen = []
    rows = [{"model": "13b", "budget": "20k"}] * 5 + [{"model": "8b", "budget": "3000", "workload": "dev"}]
    out = run_sweep(rows, option_names(advise_cmd), 1, lambda n, total: seen.append((n, total)))
    assert seen == [(1, 2), (2, 2)] and len(out) == 6 and out[0]["capex"] == out[4]["capex"]


def test_progress_line_goes_to_stderr_only_on_a_terminal(tmp_path, monkeypatch):
    import expert.cli.sweep as sweep_mod

    path = tmp_path / "r.jsonl"
    path.write_text('{"model": "13b", "budget": 20000}\n{"model": "13b", "budget": 20000}\n')
    monkeypatch.setattr(sweep_mod, "_stderr_is_tty", lambda: True)
    res = run_cli("sweep", str(path), "--jobs", "1")
    assert res.code == 0 and "sweep: 1/1 requests (100 %)" in res.err and len(res.out.splitlines()) == 2


def test_requests_differing_only_in_money_run_side_by_side_and_output_keeps_input_order(monkeypatch):
    from expert.cli import sweep as sweep_mod

    rows = [{"model": "13b", "budget": 30000}, {"model": "70b", "budget": 90000},
            {"model": "13b", "budget": "20000", "currency": "CNY"}, {"model": "70b", "budget": 50000, "region": "us"},
            {"model": "13b", "budget": 20000}, {"model": "13b", "budget": 20000, "context": 8192}]
    order = [sweep_mod.locality_key(r) for r in sweep_mod.locality_order(rows)]
    shapes = [k[0] for k in order]
    # each shape is one contiguous run, and within a shape and currency the budgets ascend
    assert len(set(shapes)) == sum(1 for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]) == 3
    usd_13b = [k[2][1] for k in order if dict(k[0]) == {"model": "13b"} and k[1] == ""]
    assert usd_13b == sorted(usd_13b) == [20000.0, 30000.0]
    ran: list[dict] = []
    real = sweep_mod._run

    def spy(kw):
        ran.append(kw)
        return real(kw)

    monkeypatch.setattr(sweep_mod, "_run", spy)
    out = run_sweep(rows, option_names(advise_cmd), 1)
    assert [x["row"] for x in out] == [1, 2, 3, 4, 5, 6]  # input order, whatever order they ran in
    assert [kw["model"] for kw in ran] == [r["model"] for r in sweep_mod.locality_order(
        [sweep_mod._normalise(r, option_names(advise_cmd)) for r in rows])]
    assert out[0]["budget"] == 30000 and out[4]["budget"] == 20000 and out[2]["currency"] == "CNY"


def test_requests_of_one_model_and_workload_run_together_whatever_their_other_keys():
    from expert.cli import sweep as sweep_mod

    # Sorted by key name alone, `batch` would lead and split each model's requests apart; the bounded estimate
    # tables would then have let their shared estimates go before the next request of the model came.
    keys = [(b, m, w) for b in (1, 4, 16) for m in ("8b", "70b") for w in ("lora", "dev")]
    rows = [{"model": m, "workload": w, "batch": b, "budget": 10000 + i} for i, (b, m, w) in enumerate(keys)]
    order = [(r["model"], r["workload"]) for r in sweep_mod.locality_order(rows)]
    runs = [k for i, k in enumerate(order) if i == 0 or k != order[i - 1]]
    assert len(runs) == len(set(runs)) == 4


def _tagged(kw):
    # Stands in for _run in forked workers: which process ran the request, slowly for the first half.
    import os
    import time

    if kw["i"] < 20:
        time.sleep(0.02)
    return {"i": kw["i"], "pid": os.getpid()}


def test_parallel_workers_run_each_request_once_in_order_and_the_idle_one_takes_from_the_others_end(monkeypatch):
    from expert.cli import sweep as sweep_mod

    monkeypatch.setattr(sweep_mod, "_run", _tagged)
    reqs = [{"model": "8b", "budget": 1000 + i, "i": i} for i in range(40)]  # one group: cut in the middle
    assert sweep_mod.segments(reqs, 2) == [(0, 20), (20, 40)]
    seen = []
    results, stats = sweep_mod.run_parallel(reqs, 2, lambda n, total: seen.append((n, total)))
    assert [r["i"] for r in results] == list(range(40))
    assert seen[-1] == (40, 40) and len(stats) == 2 and len({pid for pid, _, _ in stats}) == 2
    fast = results[39]["pid"]  # the worker of the quick second half
    assert all(r["pid"] == fast for r in results[20:])
    # Done with its own, it took requests of the slow half from its end, not from its start.
    stolen = [r["i"] for r in results[:20] if r["pid"] == fast]
    assert stolen and max(stolen) == 19 and stolen == list(range(min(stolen), 20))


def test_segments_cut_at_a_group_start_near_the_middle():
    from expert.cli.sweep import locality_order, segments

    reqs = locality_order([{"model": "8b", "budget": b} for b in range(1000, 1045)]
                          + [{"model": "70b", "budget": b} for b in range(1000, 1055)])
    cuts = segments(reqs, 2)
    # The 70b ladder comes first (55 requests): the 8b one starts 5 after the middle, within an eighth of a share.
    assert cuts == [(0, 55), (55, 100)]
    # More workers than requests: every request in exactly one segment, in order.
    assert segments(reqs[:3], 4) == [(0, 1), (1, 2), (2, 2), (2, 3)]


def test_a_worker_that_dies_is_a_one_line_error_not_a_hang(monkeypatch):
    import os

    import pytest

    from expert.cli import sweep as sweep_mod
    from expert.core.errors import ExpertError

    monkeypatch.setattr(sweep_mod, "_run", lambda kw: os._exit(3))
    monkeypatch.setattr(sweep_mod, "POLL_S", 0.05)
    with pytest.raises(ExpertError, match="exit code 3"):
        sweep_mod.run_parallel([{"model": "8b", "budget": 1000 + i} for i in range(6)], 2)
