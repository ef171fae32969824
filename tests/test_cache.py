"""The per-user cache of validated data: identical content round-trips; any change misses."""

from __future__ import annotations

import json

from expert.catalog import load_catalog
from expert.rulelang import load_rules
from expert.store import cache

from .conftest import ROOT


def test_cached_data_restores_to_equal_objects(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    cat, rules = load_catalog(ROOT / "facts"), load_rules(ROOT / "rules")
    key = cache.digest(ROOT / "facts", ROOT / "rules")
    cache.write(key, cat, rules)
    got_cat, got_rules = cache.read(key)
    assert got_cat == cat
    assert [r.raw for r in got_rules.rules] == [r.raw for r in rules.rules]
    assert [(r.id, r.action, r.line, r.file) for r in got_rules.rules] == \
        [(r.id, r.action, r.line, r.file) for r in rules.rules]
    assert got_rules.digest == rules.digest
    assert isinstance(got_cat.gpus["h100-sxm"].counts, tuple)


def test_a_changed_file_changes_the_key(facts_copy, rules_copy):
    before = cache.digest(facts_copy, rules_copy)
    p = facts_copy / "gpus.yaml"
    p.write_text(p.read_text() + "\n")
    assert cache.digest(facts_copy, rules_copy) != before


def test_a_damaged_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    (tmp_path / "gpu-expert" / "data").mkdir(parents=True)
    (tmp_path / "gpu-expert" / "data" / "abc.json").write_text(json.dumps({"catalog": {}}))
    assert cache.read("abc") is None
    assert cache.read("missing") is None


# ------------------------------------------------------------------ a cache that cannot be turned against its user

import os  # noqa: E402
import stat  # noqa: E402

import pytest  # noqa: E402

from expert import render as render_mod  # noqa: E402
from expert.core import cachedir  # noqa: E402

from .conftest import run_cli  # noqa: E402

OTHER_UID = 65534  # "nobody": a second owner for the shared-cache attack
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a second owner needs chown, i.e. root")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache root for this test, with the once-per-path warnings and the environments reset."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("GPU_EXPERT_NO_CACHE", raising=False)
    monkeypatch.setattr(cachedir, "_warned", set())
    render_mod._env_for.cache_clear()
    yield tmp_path / "xdg"
    render_mod._env_for.cache_clear()


def _chown_tree(path, uid):
    for dirpath, _dirs, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), uid, uid)


def _reseal(path, payload: bytes) -> None:
    """What an attacker with write access does: new content under a correct hash header."""
    import hashlib

    path.write_bytes(b"gpu-expert-cache 1 sha256=" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def test_the_cache_is_created_private(fresh_cache):
    d = cachedir.cache_subdir("data")
    assert d == fresh_cache / "gpu-expert" / "data"
    for p in (d, d.parent):
        assert stat.S_IMODE(os.lstat(p).st_mode) & 0o077 == 0


def _tampered_entry(base):
    cat, rules = load_catalog(ROOT / "facts"), load_rules(ROOT / "rules")
    key = cache.digest(ROOT / "facts", ROOT / "rules")
    cache.write(key, cat, rules)
    entry = base / "gpu-expert" / "data" / f"{key}.json"
    doc = json.loads(entry.read_bytes().partition(b"\n")[2])
    doc["catalog"]["gpus"]["rtx-4090"]["price_usd"] = 1.0  # a fake pick: the cheapest GPU ever
    _reseal(entry, json.dumps(doc).encode())
    return key


def test_a_resealed_entry_of_our_own_is_read(fresh_cache):
    # The control for the attack below: a correct hash is all an entry needs when the directory is ours.
    key = _tampered_entry(fresh_cache)
    assert cache.read(key)[0].gpus["rtx-4090"].price_usd == 1.0


@needs_root
def test_a_cache_owned_by_another_user_is_refused_with_one_warning(fresh_cache, capsys):
    key = _tampered_entry(fresh_cache)
    _chown_tree(fresh_cache / "gpu-expert", OTHER_UID)
    assert cache.read(key) is None
    assert cache.read(key) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"owned by uid {OTHER_UID}" in err and "running uncached" in err


@needs_root
def test_an_entry_owned_by_another_user_is_not_read(fresh_cache):
    key = _tampered_entry(fresh_cache)
    os.chown(fresh_cache / "gpu-expert" / "data" / f"{key}.json", OTHER_UID, OTHER_UID)
    assert cache.read(key) is None


@pytest.mark.parametrize("attack", ["symlink", "world-writable", "file"])
def test_an_untrustworthy_cache_directory_is_refused(fresh_cache, tmp_path, attack, capsys):
    root = fresh_cache / "gpu-expert"
    fresh_cache.mkdir()
    if attack == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        root.symlink_to(tmp_path / "elsewhere")
    elif attack == "world-writable":
        root.mkdir()
        root.chmod(0o777)
    else:
        root.write_text("")
    assert cachedir.cache_subdir("data") is None
    why = {"symlink": "is a symbolic link", "world-writable": "writable by other users",
           "file": "is not a directory"}[attack]
    assert why in capsys.readouterr().err


def test_entries_are_verified_before_use(fresh_cache, tmp_path):
    d = cachedir.cache_subdir("data")
    cachedir.write_entry(d, "ok", b"payload")
    assert cachedir.read_entry(d, "ok") == b"payload"
    raw = (d / "ok").read_bytes()
    (d / "ok").write_bytes(raw.replace(b"payload", b"paylaod"))  # hash no longer matches
    assert cachedir.read_entry(d, "ok") is None
    (d / "plain").write_bytes(b"payload")  # no header
    assert cachedir.read_entry(d, "plain") is None
    (tmp_path / "target").write_bytes(raw)
    (d / "link").symlink_to(tmp_path / "target")  # a valid entry, but reached through a link
    assert cachedir.read_entry(d, "link") is None
    os.mkfifo(d / "fifo")  # must neither hang nor be read
    assert cachedir.read_entry(d, "fifo") is None


def test_writing_replaces_a_planted_link_instead_of_following_it(fresh_cache, tmp_path):
    d = cachedir.cache_subdir("data")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (d / "entry").symlink_to(victim)
    cachedir.write_entry(d, "entry", b"new")
    assert victim.read_text() == "precious"
    assert not (d / "entry").is_symlink() and cachedir.read_entry(d, "entry") == b"new"


def test_no_cache_turns_off_every_cache(fresh_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("GPU_EXPERT_NO_CACHE", "1")
    # matplotlib keeps its font list under XDG_CACHE_HOME when this test is the first to import it: not ours.
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    assert cachedir.cache_subdir("data") is None and cachedir.cache_subdir("jinja") is None
    r = run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "html")
    assert r.code == 0, r.err
    assert not fresh_cache.exists()


def test_no_home_and_no_passwd_entry_runs_uncached(monkeypatch, fresh_cache):
    import pwd

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("HOME", raising=False)

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert cachedir.cache_root() is None
    r = run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "markdown")
    assert r.code == 0 and r.err == "", r.err


def _evil_code(marker):
    return compile(f"open({str(marker)!r}, 'w').write('ran')\n", "<planted>", "exec")


def _plant_evil_templates(jinja_dir, marker):
    import marshal

    planted = 0
    for entry in jinja_dir.iterdir():
        header = entry.read_bytes().partition(b"\n")[2].partition(b"\n")[0]  # magic + template checksum
        _reseal(entry, header + b"\n" + marshal.dumps(_evil_code(marker)))
        planted += 1
    return planted


def test_planted_template_code_runs_when_the_cache_is_ours(fresh_cache, tmp_path):
    # The control for the attack below: the payload is well formed, so only the ownership check stops it.
    assert run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "html").code == 0
    marker = tmp_path / "pwned"
    assert _plant_evil_templates(fresh_cache / "gpu-expert" / "jinja", marker) >= 2
    render_mod._env_for.cache_clear()
    run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "html")
    assert marker.exists()


@needs_root
def test_template_code_planted_in_another_users_cache_never_runs(fresh_cache, tmp_path):
    assert run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "html").code == 0
    marker = tmp_path / "pwned"
    _plant_evil_templates(fresh_cache / "gpu-expert" / "jinja", marker)
    _chown_tree(fresh_cache / "gpu-expert", OTHER_UID)
    render_mod._env_for.cache_clear()
    r = run_cli("advise", "--budget", "20000", "--model", "13b", "--format", "html")
    assert r.code == 0 and "<html" in r.out.lower()
    assert not marker.exists()
    assert len(r.err.strip().splitlines()) == 1 and "running uncached" in r.err


# ------------------------------------------------------------------ a warm start: no YAML, no Jinja compiling

import subprocess  # noqa: E402
import sys  # noqa: E402

_WARM_PROBE = """
import contextlib, io, json, sys
from expert.cli import cli
imported = {m: m in sys.modules for m in ("yaml", "jinja2")}
from expert.rulelang import load
env, compiled = load.sandbox(), []
compile_ = env.compile
env.compile = lambda source, *a, **k: compiled.append(source) or compile_(source, *a, **k)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    cli.main(["advise", "--budget", "20000", "--model", "13b", "--verbose"], standalone_mode=False)
print(json.dumps({"at_import": imported, "yaml": "yaml" in sys.modules, "compiled": len(compiled),
                  "out": out.getvalue()}))
"""


def _probe(xdg):
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg)}
    env.pop("GPU_EXPERT_NO_CACHE", None)
    res = subprocess.run([sys.executable, "-c", _WARM_PROBE], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def test_a_warm_advise_parses_no_yaml_and_compiles_no_because_template(tmp_path):
    # Cold cache (the control): the data is parsed and validated, every `because` template compiled.
    first = _probe(tmp_path)
    assert first["yaml"] and first["compiled"] > 0
    # Warm: catalog, rules and policy come from the validated cache, the templates' code from its bundle;
    # the advice is the same text. Importing the CLI loads neither PyYAML nor Jinja.
    second = _probe(tmp_path)
    assert second["at_import"] == {"yaml": False, "jinja2": False}
    assert not second["yaml"], "a warm advise imported PyYAML"
    assert second["compiled"] == 0, "a warm advise compiled `because` templates"
    assert second["out"] == first["out"]


@needs_root
def test_because_code_planted_in_another_users_cache_never_runs(tmp_path):
    import marshal

    _probe(tmp_path)
    (entry,) = (tmp_path / "gpu-expert" / "data").glob("*.because")
    marker = tmp_path / "pwned"
    codes = marshal.loads(entry.read_bytes().partition(b"\n")[2])
    _reseal(entry, marshal.dumps({src: _evil_code(marker) for src in codes}))
    with pytest.raises(AssertionError):  # the control: in our own cache, well-formed code is trusted, and runs
        _probe(tmp_path)
    assert marker.exists()
    marker.unlink()
    _chown_tree(tmp_path / "gpu-expert", OTHER_UID)
    assert _probe(tmp_path)["compiled"] > 0  # refused: compiled afresh
    assert not marker.exists()
