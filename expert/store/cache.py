"""A per-user cache of validated catalogs and rules, keyed by the hash of their files.

Parsing the YAML and validating it is most of a cold start. Once a set of facts/ and rules/ files
(and the code that reads them) has loaded cleanly, its validated content is stored as plain JSON in
$XDG_CACHE_HOME/gpu-expert/data/<sha256>.json; the next process with identical files skips both.
JSON, not pickle: reading the catalog can never run code. The rules' compiled `because` templates are kept
beside it as marshal data (<sha256>.because: code objects, as Jinja's own bytecode cache keeps them), keyed
by the templates' sources and everything that shapes their code. The directory and every entry pass the
checks of core/cachedir.py (ours, writable by nobody else, no links, content hash) before use; any problem
reading falls back to a full load (or a fresh compile). Set GPU_EXPERT_NO_CACHE=1 to bypass it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalog import Catalog, Energy, Gpu, Model, Precision, Source
from ..core.cachedir import cache_subdir, read_entry, write_entry
from ..core.errors import ExpertError
from ..core.yamlio import read_data_file
from ..rulelang import Action, Rule, RuleSet

# The code that validates what is cached: a change to any of it invalidates the cache.
_CODE = ("catalog/load.py", "catalog/model.py", "catalog/efficiency.py", "catalog/platforms.py", "rulelang/load.py",
         "rulelang/conditions.py",
         "rulelang/vocabulary.py", "core/schema.py", "core/yamlio.py", "core/cachedir.py", "store/cache.py")


def cache_dir() -> Path | None:
    """The checked data cache directory, or None (disabled, or refused as untrustworthy)."""
    return cache_subdir("data")


def digest(facts: Path, rules: Path) -> str | None:
    """Hash of every data file and of the code that validates them (a code change invalidates too).

    None when a file cannot be read as bounded regular data: the loaders then report it with its name."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent
    try:
        for name in _CODE:
            h.update((here / name).read_bytes())
        for d in (facts, rules):
            for p in sorted(d.glob("*.yaml")):
                h.update(p.name.encode() + b"\0" + read_data_file(p, str(p)) + b"\0")
    except (OSError, ExpertError):
        return None
    return h.hexdigest()


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.init}
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


@functools.cache
def _tuple_fields(cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    # The annotation as written (these modules use `from __future__ import annotations`): evaluating every
    # class's hints with typing.get_type_hints would cost more than the restore itself.
    fields = [f for f in dataclasses.fields(cls) if f.init]
    return tuple(f.name for f in fields), frozenset(f.name for f in fields if str(f.type).startswith("tuple"))


def _build(cls: type, data: dict[str, Any]) -> Any:
    names, tuples = _tuple_fields(cls)
    return cls(**{n: tuple(data[n]) if n in tuples else data[n] for n in names})


def dump(cat: Catalog, rules: RuleSet) -> dict[str, Any]:
    return {"catalog": _to_plain(cat), "rules": _to_plain(rules)}


def restore(data: dict[str, Any]) -> tuple[Catalog, RuleSet]:
    c = data["catalog"]
    energy = c["energy"]
    energy["sources"] = {k: tuple(v) for k, v in energy["sources"].items()}
    eff = c["efficiency"]
    eff["_sources"] = {k: tuple(v) for k, v in eff["_sources"].items()}
    cat = Catalog(
        gpus={k: _build(Gpu, v) for k, v in c["gpus"].items()},
        models={k: _build(Model, v) for k, v in c["models"].items()},
        shorthands=c["shorthands"],
        precisions={k: _build(Precision, v) for k, v in c["precisions"].items()},
        energy=_build(Energy, energy),
        efficiency=eff,
        sources={k: _build(Source, v) for k, v in c["sources"].items()},
        digest=c["digest"],
        platforms={**c["platforms"], "_sources": {k: tuple(v) for k, v in c["platforms"]["_sources"].items()}},
    )
    rs = data["rules"]
    rules = []
    for r in rs["rules"]:
        r = dict(r)
        r["action"] = _build(Action, r["action"])
        rules.append(_build(Rule, r))
    return cat, RuleSet(rules, rs["digest"])


def read(key: str) -> tuple[Catalog, RuleSet] | None:
    base = cache_dir()
    if base is None:
        return None
    payload = read_entry(base, f"{key}.json")
    if payload is None:
        return None
    try:
        return restore(json.loads(payload))
    except Exception:  # noqa: BLE001 - a stale or damaged cache only costs a full load
        return None


def write(key: str, cat: Catalog, rules: RuleSet) -> None:
    base = cache_dir()
    if base is None:
        return
    write_entry(base, f"{key}.json", json.dumps(dump(cat, rules)).encode())


def because_bundle(rules: RuleSet) -> Callable[[], dict[str, Any]]:
    """A loader of the compiled `because` templates of `rules` (for rulelang.load.add_compiled_bundle): read
    from the cache, or compiled here (all of them, once) and stored for the next process."""

    def load() -> dict[str, Any]:
        import marshal
        import types

        from ..rulelang.load import because_code, because_signature

        base = cache_dir()
        if base is None:
            return {}  # uncached: each template is compiled when it is first rendered
        sources = sorted({r.because for r in rules.rules})
        try:
            h = hashlib.sha256(because_signature().encode())
        except OSError:  # the package's source cannot be read (a zip import): compile each on first use
            return {}
        for src in sources:
            h.update(b"\0" + src.encode())
        name = f"{h.hexdigest()}.because"
        payload = read_entry(base, name)
        if payload is not None:
            try:
                codes = marshal.loads(payload)
            except (EOFError, ValueError, TypeError):
                codes = None
            if (isinstance(codes, dict) and sorted(codes) == sources
                    and all(isinstance(c, types.CodeType) for c in codes.values())):
                return codes
        codes = {}
        for src in sources:
            try:
                codes[src] = because_code(src)
            except Exception:  # noqa: BLE001 - a template that does not compile is reported when it renders
                return codes
        write_entry(base, name, marshal.dumps(codes))
        return codes

    return load
