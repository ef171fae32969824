"""The `expert` command's entry point: the process settings of a one-shot command, then the command line.

A command is one short process: it loads the catalog and rules, answers, and exits. At CPython's default
young-generation threshold (700) the collector runs hundreds of times while the imports, the catalog and one
request's candidates are built, each pass walking everything that survived so far; none of that is garbage.
The batch threshold (core/gcpolicy.py) is set before anything is imported, and the exit skips the final
collection over what the process holds. Nothing here changes any result.
"""

from __future__ import annotations


def main() -> None:
    from .core.gcpolicy import for_command

    for_command()
    from .cli import main as cli_main

    cli_main()
