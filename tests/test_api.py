"""`python -m expert`, --help examples on every command, and the Python API (`from expert import advise, estimate`)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import click
import pytest

from expert.cli import cli
from expert.cli.examples import EXAMPLES
from expert.core.docschema import validate
from expert.core.errors import InputError

from .conftest import ROOT, run_cli


def _commands(cmd: click.Command = cli, path: str = "expert"):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_python_dash_m_expert_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "expert", "catalog", "precisions", "--format", "json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "q4_k_m" in {p["id"] for p in json.loads(out.stdout)["precisions"]}


@pytest.mark.parametrize("path", [p for p, _ in _commands()])
def test_every_help_has_examples_that_parse(path):
    args = path.split()[1:]
    res = run_cli(*args, "--help")
    assert res.code == 0 and "Examples:" in res.out
    for line in EXAMPLES[path]:
        words = [w for w in shlex.split(line) if "=" not in w or w.startswith("-")]
        words = words[3:] if words[:3] == ["python", "-m", "expert"] else words[1:]
        cmd: click.Command = cli
        while isinstance(cmd, click.Group) and words and words[0] in cmd.commands:
            cmd = cmd.commands[words.pop(0)]
        assert not isinstance(cmd, click.Group), line
        cmd.make_context(cmd.name or "", list(words))  # raises on an unknown option or a bad value


def test_import_expert_is_cheap():
    code = "import sys, expert; print(sorted(m for m in sys.modules if m.startswith(('expert.', 'click', 'jinja2'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_python_api_returns_the_cli_json_view_model():
    from expert import advise, estimate

    doc = advise("meta-llama/Llama-2-13b-hf", "20k", top=3, prompt_tokens="2K")
    cli_doc = json.loads(run_cli("advise", "--model", "meta-llama/Llama-2-13b-hf", "--budget", "20k", "--top", "3",
                                 "--prompt-tokens", "2K", "--format", "json").out)
    assert doc == cli_doc and validate(doc, "advice") == [] and len(doc["top"]) == 3
    est = estimate("70b", "H100-SXM", count=8, precision="fp8")
    assert est["gpu"] == "h100-sxm" and est["count"] == 8 and validate(est, "estimate") == []
    from expert.estimate import Config  # the estimator subpackage is still importable

    assert Config.__name__ == "Config"
    with pytest.raises(InputError, match="--budget: 'x' is not a number"):
        advise("13b", "x")
    with pytest.raises(InputError, match="unknown option 'colour'"):
        advise("13b", 20000, colour="red")
