"""The per-user cache directory, and the checks that keep it from being turned against its user.

Whoever can write to the cache can choose what the tool believes (a validated catalog) and, through
compiled templates (marshal data), what it runs. So the cache is used only when every directory on the
way is a real directory (not a symbolic link) owned by the user and writable by nobody else; otherwise
one warning goes to stderr and the command runs uncached. Entries are read without following links,
only as regular files owned by the user, and only when the SHA-256 in their header matches the content.
GPU_EXPERT_NO_CACHE=1 turns every cache off.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

NO_CACHE_ENV = "GPU_EXPERT_NO_CACHE"
# A validated catalog plus rules is ~1 MiB of JSON; anything much larger is not ours.
MAX_ENTRY_BYTES = 32 * 2**20
_MAGIC = b"gpu-expert-cache 1 sha256="
_warned: set[str] = set()


def cache_disabled() -> bool:
    return os.environ.get(NO_CACHE_ENV, "").strip() not in ("", "0")


def _base() -> Path | None:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg:
        return Path(xdg)
    try:
        return Path.home() / ".cache"
    except (RuntimeError, KeyError, OSError):
        # HOME unset and no passwd entry for this uid (containers, CI): there is nowhere to cache.
        return None


def _warn(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        sys.stderr.write(f"expert: warning: cache {path} {why}; running uncached\n")


def _dir_problem(path: Path, st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _parent_problem(path: Path) -> str | None:
    """The directory the cache lives in: another user who may rename entries in it could swap ours."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid not in (os.geteuid(), 0):
        return f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}) or root"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}, no sticky bit)"
    return None


def cache_root() -> Path | None:
    """Where the cache lives (not created): $XDG_CACHE_HOME/gpu-expert or ~/.cache/gpu-expert."""
    if cache_disabled():
        return None
    base = _base()
    return None if base is None else base / "gpu-expert"


def _ensure(path: Path) -> str | None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    return _dir_problem(path, os.lstat(path))


def cache_subdir(name: str) -> Path | None:
    """`<cache root>/<name>`, created 0700 and checked; None (after one warning) when it may not be trusted."""
    root = cache_root()
    if root is None:
        return None
    sub = root / name
    try:
        root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        why = _parent_problem(root.parent)
        if why:
            _warn(root.parent, why)
            return None
        for path in (root, sub):
            why = _ensure(path)
            if why:
                _warn(path, why)
                return None
    except OSError:
        return None  # unwritable or odd file system: a cache only saves time
    return sub


def read_entry(directory: Path, name: str) -> bytes | None:
    """The payload of a cache entry, or None unless it is a regular file of ours whose hash matches."""
    try:
        fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                or st.st_size > MAX_ENTRY_BYTES + 128):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            blob = fh.read(MAX_ENTRY_BYTES + 129)
    except OSError:
        return None
    finally:
        os.close(fd)
    header, sep, payload = blob.partition(b"\n")
    if not sep or not header.startswith(_MAGIC):
        return None
    if header[len(_MAGIC):] != hashlib.sha256(payload).hexdigest().encode():
        return None
    return payload


def write_entry(directory: Path, name: str, payload: bytes) -> None:
    """Write atomically (a new 0600 file renamed over the old: a planted link is replaced, never followed)."""
    if len(payload) > MAX_ENTRY_BYTES:
        return
    import tempfile  # only a cache miss writes: kept off the start-up of a warm run

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, directory / name)
        tmp = None
    except OSError:
        return
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
