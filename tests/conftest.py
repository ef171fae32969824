"""Shared fixtures: the real catalogs and rules, loaded once, and one CLI helper."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

# Hermetic: the suite never reads or writes the user's ~/.cache/gpu-expert. Set before expert is
# imported, so every cache (validated data, compiled templates) lands in this session's directory.
_CACHE = tempfile.mkdtemp(prefix="gpu-expert-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
os.environ.pop("GPU_EXPERT_NO_CACHE", None)

from expert.cli import cli  # noqa: E402
from expert.governance.golden import GOLDEN_TODAY  # noqa: E402

# Golden outputs quote price ages in days: render them as of the day they were written (read per call).
os.environ["GPU_EXPERT_TODAY"] = GOLDEN_TODAY
from expert.store import load_all  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cat():
    return load_all()[0]


@pytest.fixture(scope="session")
def rules():
    return load_all()[1]


@dataclass
class Result:
    code: int
    out: str
    err: str


def benchmark_module(name: str):
    """Import benchmarks/NAME.py (not a package) as module NAME."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the body executes
    spec.loader.exec_module(mod)
    return mod


def run_cli(*args: str) -> Result:
    """Run `expert ARGS`; returns exit code, stdout and stderr as a user would see them."""
    runner = CliRunner()
    res = runner.invoke(cli, list(args), catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def facts_copy(tmp_path: Path) -> Path:
    """A writable copy of facts/ to corrupt in tests."""
    dest = tmp_path / "facts"
    shutil.copytree(ROOT / "facts", dest)
    return dest


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", dest)
    return dest


def pytest_sessionfinish(session, exitstatus):
    # The engine writes the classes it learnt when the process exits (rulelang/verdictstore.py): after this, to
    # nowhere, rather than into a re-created copy of the directory removed here.
    os.environ["GPU_EXPERT_NO_CACHE"] = "1"
    shutil.rmtree(_CACHE, ignore_errors=True)
