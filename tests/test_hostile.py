"""Hostile data: names that try to break out of their output format, escape sequences aimed at the
terminal, and the process-level failures (a full disk, no home directory) that must stay one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from expert import render as render_mod
from expert.core import cachedir

from .conftest import ROOT, run_cli

HOSTILE = """ & <b>bold</b> "dq" 'sq'"""


@pytest.fixture
def hostile_catalog(tmp_path, monkeypatch):
    """A team catalog (GPU_EXPERT_FACTS overlay) whose every GPU name carries HTML and Markdown syntax."""
    facts = tmp_path / "facts"
    shutil.copytree(ROOT / "facts", facts)
    p = facts / "gpus.yaml"
    text, n = re.subn(r"^(\s*-?\s*name: )(.+)$", lambda m: f"{m.group(1)}'{m.group(2).strip(chr(39))}"
                      f"{HOSTILE.replace(chr(39), chr(39) * 2)}'", p.read_text(), flags=re.M)
    assert n > 10
    p.write_text(text)
    monkeypatch.setenv("GPU_EXPERT_FACTS", str(facts))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # an empty compiled-template cache
    monkeypatch.setattr(cachedir, "_warned", set())
    yield
    render_mod._env_for.cache_clear()


def _advise(fmt: str) -> str:
    render_mod._env_for.cache_clear()  # a new process in all but name: templates come from the disk cache
    r = run_cli("advise", "--budget", "20000", "--model", "13b", "--format", fmt)
    assert r.code == 0, r.err
    return r.out


def test_escaping_holds_across_text_html_text_with_a_shared_template_cache(hostile_catalog, tmp_path):
    first = _advise("text")
    html = _advise("html")
    again = _advise("text")
    md = _advise("markdown")
    # Every run after the first loads compiled templates (the shared _macros.j2 among them) from disk.
    assert len(list((tmp_path / "xdg" / "gpu-expert" / "jinja").iterdir())) >= 3
    for text in (first, again):
        assert HOSTILE in text and "&amp;" not in text and "&lt;" not in text
    assert "<b>bold</b>" not in html
    assert "&amp; &lt;b&gt;bold&lt;/b&gt; &#34;dq&#34; &#39;sq&#39;" in html
    assert r"\& \<b\>bold\</b\> " in md and "<b>bold</b>" not in md
    assert first == again


def test_markdown_escapes_a_model_name_from_config_json(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "_name_or_path": "evil*|[x](http://e)<i>", "hidden_size": 2048,
                               "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                               "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
                               "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}))
    r = run_cli("advise", "--budget", "5000", "--model", str(cfg), "--format", "markdown")
    assert r.code == 0, r.err
    assert r"evil\*\|\[x\](http://e)\<i\>" in r.out
    assert "evil*|" not in r.out


def test_terminal_escape_sequences_from_data_never_reach_stdout(tmp_path):
    cfg = tmp_path / "config.json"
    name = "\x1b]0;pwned\x07\x1b[2J\x9b31mred\u202eevil"
    cfg.write_text(json.dumps({"model_type": "llama", "_name_or_path": name, "hidden_size": 2048,
                               "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                               "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
                               "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}))
    for fmt in ("text", "markdown", "json"):
        r = run_cli("advise", "--budget", "5000", "--model", str(cfg), "--format", fmt)
        assert r.code == 0, r.err
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", r.out), fmt
        assert "]0;pwned" in r.out or fmt == "json"  # the text is kept, only the control characters go


def _expert(*args: str, **kw) -> subprocess.CompletedProcess:
    code = "from expert.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], text=True, timeout=60, **kw)


def test_a_full_disk_on_stdout_is_one_line_and_exit_2():
    with open("/dev/full", "w") as full:
        r = _expert("catalog", "gpus", stdout=full, stderr=subprocess.PIPE)
    assert r.returncode == 2, r.stderr
    assert r.stderr == "expert: error: writing output: No space left on device\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="running as a uid without a passwd entry needs root")
def test_no_home_and_no_passwd_entry_is_no_traceback(tmp_path):
    os.chmod(tmp_path, 0o777)
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME")}
    try:
        r = _expert("advise", "--budget", "20000", "--model", "13b", user=54321, group=54321, env=env, cwd=tmp_path,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except PermissionError:  # tests/test_cache.py covers the same case in-process
        pytest.skip(f"{sys.executable} is not reachable for another uid here")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and "RECOMMENDATION" in r.stdout


def test_estimate_warns_when_the_rules_would_reject_the_configuration():
    r = run_cli("estimate", "--model", "13b", "--gpu", "a100-80gb-pcie", "--precision", "fp8", "--format", "json")
    assert r.code == 0
    assert "precision/fp8-needs-ada-hopper" in r.err and "warning" in r.err
    assert [v["rule"] for v in json.loads(r.out)["rejected_by"]] == ["precision/fp8-needs-ada-hopper"]
    m2 = run_cli("estimate", "--model", "8b", "--gpu", "m2-ultra-192gb", "--precision", "bf16")
    assert "precision/bf16-needs-ampere" in m2.err
    fine = run_cli("estimate", "--model", "8b", "--gpu", "rtx-4090", "--precision", "bf16", "--deployment",
                   "workstation", "--format", "json")
    assert fine.err == "" and json.loads(fine.out)["rejected_by"] == []


def test_thousands_separators_are_read_and_anything_else_is_refused():
    from expert.core.errors import InputError
    from expert.request import parse_number

    assert parse_number("20,000", "--budget") == 20000
    assert parse_number("1,234,567.5", "--budget") == 1234567.5
    assert parse_number("20,000k", "--budget") == 2e7
    for bad in ("20.000,50", "1,5", "12,34,567", "20,00", ",000"):
        with pytest.raises(InputError, match="commas may only separate thousands"):
            parse_number(bad, "--budget")


def test_yaml_alias_bomb_is_refused_before_it_expands():
    from expert.core.errors import ExpertError
    from expert.core.yamlio import load_yaml_text

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(20))
    with pytest.raises(ExpertError, match=r"bomb\.yaml:\d+: YAML aliases"):
        load_yaml_text(bomb, "bomb.yaml")
    assert load_yaml_text("a: &x 1\n", "anchor.yaml") == {"a": 1}  # an anchor alone is harmless


def test_a_fifo_data_file_does_not_hang(tmp_path):
    from expert.core.errors import ExpertError
    from expert.core.yamlio import load_yaml_file

    os.mkfifo(tmp_path / "x.yaml")
    with pytest.raises(ExpertError, match="not a regular file"):
        load_yaml_file(tmp_path / "x.yaml", "facts/x.yaml")


def test_because_fails_cleanly_at_runtime_on_a_fact_the_sample_did_not_foresee():
    from expert.core.errors import RuleError
    from expert.rulelang.load import Action, Rule

    rule = Rule(id="precision/p", factor="precision", title="t", when={}, action=Action("warn"),
                because="{{ gpu.memory_gib | num(1) }}", sources=(), basis={}, scope=None, file="rules/p.yaml",
                line=7)
    assert rule.render({"gpu": {"memory_gib": 24.0}}) == "24.0"
    with pytest.raises(RuleError, match=r"rules/p\.yaml:7: rule 'precision/p': because: fails to render"):
        rule.render({"gpu": {"memory_gib": None}})


def test_jinja_is_pinned_past_the_sandbox_escape():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"jinja2>=3\.1\.(6|[7-9]|\d\d)', text)
    import jinja2

    assert tuple(int(x) for x in jinja2.__version__.split(".")[:3]) >= (3, 1, 6)


def test_the_project_data_has_no_aliases_and_fits_the_caps():
    from expert.core.yamlio import MAX_DATA_FILE_BYTES, load_yaml_file

    for d in ("facts", "rules", "tests/scenarios"):
        for p in Path(ROOT / d).glob("*.yaml"):
            assert p.stat().st_size < MAX_DATA_FILE_BYTES / 4, p
            load_yaml_file(p)
