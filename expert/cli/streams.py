"""What the CLI writes: control characters from data never reach a terminal, and an output error is one line.

Names come from team catalogs and config.json files (`_name_or_path`); an escape sequence in one could
rewrite the user's terminal (title, colours, hidden text, a fake prompt). Everything the commands print
goes through a stream that drops C0/C1 control characters (except tab and newline) and the Unicode
bidirectional overrides that make text read differently from what it is.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


class TerminalSafe:
    """A text stream wrapper that strips control characters from everything written through it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes with b"" to tell text streams from binary ones
            raise TypeError("write() argument must be str")
        return self._stream.write(strip_controls(text))

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # no way around the filter: click falls back to this text stream
            raise AttributeError(name)
        return getattr(self._stream, name)


def write_styled(text: str) -> None:
    """Write text whose data is already stripped (colour.py strips each line) and whose only escape sequences
    are the colours colour.py added, past the filter that would remove them."""
    stream = sys.stdout._stream if isinstance(sys.stdout, TerminalSafe) else sys.stdout
    stream.write(text)
    stream.flush()


def _silence_stdout() -> None:
    """After a failed write, point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ else -1
    except (OSError, ValueError):
        return
    if fd >= 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def os_error_line(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else "writing output: " if exc.errno in (28, 5, 27) else ""
    return f"expert: error: {where}{exc.strerror or exc}"


def guarded(run: Callable[[], Any], bad_input: int) -> Any:
    """Run the command with filtered stdout/stderr; an OSError (a full disk, a closed pipe) ends in one line."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafe(out), TerminalSafe(err)  # type: ignore[assignment]
    try:
        try:
            rv = run()
            sys.stdout.flush()
            return rv
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(0)
        except OSError as exc:
            _silence_stdout()
            try:
                sys.stderr.write(os_error_line(exc) + "\n")
                sys.stderr.flush()
            except OSError:
                pass
            sys.exit(bad_input)
    finally:
        sys.stdout, sys.stderr = out, err
