"""The wheel carries facts/, rules/ and templates/: `expert advise` works from an unrelated directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_from_an_unrelated_directory(tmp_path):
    # Built from a copy of what the package is made of: a stale build/ of the checkout cannot leak in.
    src = tmp_path / "src"
    for name in ("expert", "facts", "rules", "templates"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(src)], check=True)
    wheel = next(dist.glob("gpu_expert-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # Dependencies come from this environment (durable-rules compiles C for minutes); the project itself
    # is installed from the wheel alone, so nothing of the checkout can leak in.
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.check_output([str(py), "-c", "import expert, pathlib; print(pathlib.Path(expert.__file__))"],
                                    cwd=elsewhere, env=env, text=True).strip()
    assert str(site) in where, where
    out = subprocess.run([str(env_dir / "bin" / "expert"), "advise", "--budget", "20000", "--model", "13b"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "RECOMMENDATION" in out.stdout
    md = subprocess.run([str(env_dir / "bin" / "expert"), "advise", "--budget", "20000", "--model", "13b",
                         "--format", "markdown"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert md.returncode == 0 and "## Decision factors" in md.stdout
    # The JSON Schema ships in the wheel, and `python -m expert` runs from it.
    schema = subprocess.run([str(py), "-c", "from expert.core.docschema import load_schema; "
                             "print(sorted(load_schema()['$defs'])[:2])"], cwd=elsewhere, env=env,
                            capture_output=True, text=True)
    assert schema.returncode == 0 and "advice" in schema.stdout, schema.stderr
    err = subprocess.run([str(py), "-m", "expert", "advise", "--budget", "x", "--model", "13b", "--format", "json"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert err.returncode == 2 and '"schema_version"' in err.stderr, err.stderr
    # The governance commands that read the scenario corpus say in one line that they need a checkout.
    gov = subprocess.run([str(env_dir / "bin" / "expert"), "rules", "check"], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert gov.returncode == 2 and gov.stderr.count("\n") == 1 and "needs a checkout" in gov.stderr, gov.stderr
    assert "RECOMMENDATION" in out.stdout and "GOOD / BETTER / BEST" in out.stdout
