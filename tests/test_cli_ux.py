"""Typed options (--help lists values, shell completion offers them), progress lines on a terminal, and the
governance commands outside a checkout."""

from __future__ import annotations

import re
import shutil

import pytest
from click.testing import CliRunner

from expert.cli import cli
from expert.cli import types as T
from expert.governance import commands, scenarios
from tests.conftest import ROOT, run_cli


def test_help_lists_the_values_of_every_choice_option():
    out = run_cli("advise", "--help").out
    for listed in ("--workload [dev|inference|lora|qlora|finetune|training]", "--region [global|us|eu|china]",
                   "--currency [CNY|EUR|USD]", "--deployment [workstation|datacenter]", "--condition [any|new]",
                   "--format [text|markdown|html|json]", "|q4_k_m|", "--engine [auto|llama.cpp|vllm|"):
        assert listed in out, listed
    for metavar in ("--budget MONEY", "--context TOKENS", "--hours-per-day HOURS", "--only GPU,...", "--top N",
                    "--output FILE", "0 < h <= 24", "1<=x<=1000"):
        assert metavar in out, metavar
    assert "TEXT" not in out.replace("--format [text", "")
    est = run_cli("estimate", "--help").out
    assert "--kv-cache [auto|fp16|fp8|q8_0|q4_0]" in est and "--gpu GPU" in est
    assert "[text|json]" in run_cli("catalog", "--help").out
    assert "--factor [model_size|precision|" in run_cli("rules", "list", "--help").out


def test_values_are_still_validated_by_the_request_with_one_line_errors():
    r = run_cli("advise", "--budget", "20k", "--model", "13b", "--workload", "chat")
    assert r.code == 2 and "--workload: unknown workload 'chat'" in r.err and r.err.count("\n") == 1
    r = run_cli("advise", "--budget", "20k", "--model", "13b", "--region", "EU", "--format", "json")
    assert r.code == 0, r.err


def _complete(words: str) -> list[str]:
    env = {"_EXPERT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    res = CliRunner().invoke(cli, [], env=env, prog_name="expert")
    assert res.exit_code == 0, res.output
    return [line.split(",", 1)[1] for line in res.output.splitlines() if line]


def test_shell_completion_offers_commands_values_and_ids():
    assert "advise" in _complete("expert ad")
    assert _complete("expert advise --workload q") == ["qlora"]
    assert "h100-sxm" in _complete("expert advise --why-not h100")
    assert _complete("expert advise --only l40s,H100-S") == ["l40s,h100-sxm"]
    assert "llama-3.1-70b" in _complete("expert estimate --model llama-3.1-7")
    assert "html" in _complete("expert advise --format h")
    assert T.MODEL.values() and T.PRECISION.values()[0] == "auto"


@pytest.fixture
def small_corpus(tmp_path):
    d = tmp_path / "scenarios"
    d.mkdir()
    for name in ("inference-13b-20k-usd", "dev-8b-workstation-3k-usd"):
        shutil.copy(ROOT / "tests" / "scenarios" / f"{name}.yaml", d)
    return d


def test_progress_on_a_terminal_only_and_erased_when_done(monkeypatch, small_corpus):
    written: list[str] = []
    monkeypatch.setattr(commands, "_progress_write", written.append)
    monkeypatch.setattr(commands, "_stderr_is_tty", lambda: False)
    quiet = run_cli("rules", "coverage", "--scenarios", str(small_corpus))
    assert quiet.code == 0 and written == [] and quiet.err == ""
    monkeypatch.setattr(commands, "_stderr_is_tty", lambda: True)
    loud = run_cli("rules", "coverage", "--scenarios", str(small_corpus))
    assert loud.code == 0 and loud.out == quiet.out
    assert written[0].startswith("rules coverage: loading")
    assert "\r\x1b[Krules coverage: 2/2 scenario runs" in written
    assert written[-1] == "\r\x1b[K"


def test_governance_commands_outside_a_checkout_say_so_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(scenarios, "default_dir", lambda: tmp_path / "no-corpus")
    for args in (["rules", "check"], ["rules", "coverage"], ["rules", "snapshots"],
                 ["rules", "show", "precision/fp8-needs-ada-hopper"]):
        r = run_cli(*args)
        assert r.code == 2, (args, r.out, r.err)
        assert "needs a checkout of gpu-expert" in r.err and r.err.count("\n") == 1, r.err
    monkeypatch.chdir(tmp_path)  # not a git repository
    r = run_cli("audit", "--base", "HEAD")
    assert r.code == 2 and "audit needs a git checkout" in r.err and r.err.count("\n") == 1, r.err
    assert run_cli("rules", "list").code == 0  # what needs only the package works anywhere


def test_the_top_list_says_what_it_is_ordered_by():
    # A desk box ranks one card before a two-card split, so a higher score can sit lower: the header and each
    # row say why.
    from .conftest import run_cli

    r = run_cli("advise", "--budget", "5000", "--model", "70b", "--workload", "dev", "--top", "5")
    assert "TOP 5 RANKED (by quality tier, then fewest cards (a desk box), then cost per score point)" in r.out
    rows = [ln for ln in r.out.splitlines() if re.match(r"\s+\d\. ", ln)]
    assert len(rows) == 5 and all(re.search(r"score [\d.]+, \S", ln) for ln in rows)
