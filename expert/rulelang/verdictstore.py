"""The engine's answers per equivalence class, kept per user between processes.

A process asks durable_rules once per class of facts it has not seen (engine.py); a new `expert advise` process
has seen none, so it built a fact for a representative of each of its ~200 classes and asserted them all. The
answers (class -> the ids of the rules that fired) depend only on the rule set and on the code that defines the
classes and compiles the rules, so they are stored under a key of both: the rule set's digest, the sources of
rulelang/ and durable_rules' own files (its engine and its matcher, by path, size and time). A later process
loads them and asks durable only about classes new to it.

The store is marshal data of plain tuples, strings, numbers and None (never code), read only from an entry that
passes core/cachedir.py's checks (ours, writable by nobody else, no links, content hash), then checked for shape:
anything else is ignored. At most STORE_LIMIT classes per factor are written, the most recently learnt, so that
loading stays a few milliseconds. GPU_EXPERT_NO_CACHE=1 turns it off; fresh firing (audits) never reads it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import marshal
import os
from pathlib import Path

from ..core.cachedir import cache_subdir, read_entry, write_entry

STORE_LIMIT = 3_000  # classes per factor written: about a dozen distinct requests' worth
_CODE = ("engine.py", "facts.py", "conditions.py", "vocabulary.py", "load.py", "verdictstore.py")


@functools.lru_cache(maxsize=16)  # read at compile and again at exit: the files are hashed once
def entry_name(digest: str) -> str | None:
    """The entry of a rule set: its digest and the code its classes and firings are made by."""
    h = hashlib.sha256(digest.encode())
    here = Path(__file__).resolve().parent
    try:
        for name in _CODE:
            h.update(b"\0" + (here / name).read_bytes())
        # Found, not imported (a process that knows every class it meets need not load durable_rules): its
        # package's sources and its matcher, by path, size and modification time.
        files = []
        for top in ("durable", "durable_rules_engine"):
            spec = importlib.util.find_spec(top)
            if spec is None or not spec.origin:
                return None
            here_too = Path(spec.origin).parent
            files += [here_too / "engine.py", here_too / "lang.py"] if spec.submodule_search_locations else [
                Path(spec.origin)]
        for f in files:
            st = os.stat(f)
            h.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    except (OSError, ImportError, ValueError):
        return None
    return f"{h.hexdigest()}.verdicts"


def load(digest: str, factors: dict[str, set[str]]) -> dict[str, dict[tuple, tuple[str, ...]]]:
    """The stored answers of this rule set per factor ({} when none, or anything is off). `factors`: each
    factor's rule ids; an answer naming another rule is not this rule set's, and the whole entry is dropped."""
    base, name = cache_subdir("engine"), entry_name(digest)
    if base is None or name is None:
        return {}
    payload = read_entry(base, name)
    if payload is None:
        return {}
    try:
        data = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(data, dict) or not set(data) <= set(factors):
        return {}
    for factor, known in data.items():
        # The classes are only ever compared with the classes this process computes (a stray one matches none);
        # the rule ids are looked up, so each must be one of this factor's rules.
        try:
            if not (isinstance(known, dict) and all(r.__class__ is tuple for r in known.values())
                    and set().union(*known.values()) <= factors[factor]):
                return {}
        except TypeError:  # an unhashable rule id
            return {}
    return data


def save(digest: str, verdicts: dict[str, dict[tuple, tuple[str, ...]]]) -> None:
    """Write the most recently learnt STORE_LIMIT answers of each factor (dicts keep insertion order)."""
    base, name = cache_subdir("engine"), entry_name(digest)
    if base is None or name is None:
        return
    kept = {f: dict(list(known.items())[-STORE_LIMIT:]) for f, known in verdicts.items()}
    try:
        payload = marshal.dumps(kept)
    except ValueError:  # a class item marshal cannot write: nothing is stored
        return
    write_entry(base, name, payload)
