"""The bad-input catalogue: every command, option and data file, fed what a user, a team overlay or a
pull request might give it. Each case asserts the exit status (2 for bad input, 0 with one warning for a
cache that is refused), exactly one line on stderr naming the problem, nothing on stdout, no traceback,
and that it finishes within CASE_SECONDS (a hang fails the case instead of stalling CI).

tests/test_cli.py holds the contract cases that predate this file; tests/test_cache.py the cache attacks;
tests/test_hostile.py the escaping and bounded-loading checks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from expert import render as render_mod
from expert.core import cachedir

from .conftest import ROOT, run_cli

CASE_SECONDS = 20


@pytest.fixture(autouse=True)
def _time_limit():
    def hung(signum, frame):
        raise TimeoutError(f"the case ran over {CASE_SECONDS} s: a hang")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(CASE_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Case:
    id: str
    args: list[str]
    msg: str  # regex the one stderr line must match
    code: int = 2
    setup: Callable[[Path], dict[str, str]] | None = None  # makes files; returns env vars to set
    env: dict[str, str] = field(default_factory=dict)


ADVISE = ["advise", "--budget", "20000", "--model", "13b"]
ADVISE_LORA = [*ADVISE, "--workload", "lora"]  # --tokens is read by the workloads that train
ESTIMATE = ["estimate", "--model", "13b", "--gpu", "rtx-4090", "--precision", "q4_k_m"]


def _with(base: list[str], opt: str, value: str) -> list[str]:
    args = list(base)
    if opt in args:
        args[args.index(opt) + 1] = value
    else:
        args += [opt, value]
    return args


# ---------------------------------------------------------------------------------------------- numbers

NOT_A_NUMBER = ["abc", "", " ", "0x10", "1..5", "5 5", "--", "2TB", "١٢", "½", "1e", "e5", "+-1", "20k20"]
COMMAS = ["20.000,50", "1,5", "12,34,567", ",000", "20,00", "1,0000"]
NONPOSITIVE = ["0", "-5", "-0.001", "-1e3"]
NOT_FINITE = ["1e400", "nan", "inf", "-inf", "Infinity"]

NUMBER_OPTIONS = [(ADVISE, "--budget"), (ADVISE, "--context"), (ADVISE_LORA, "--tokens"), (ADVISE, "--electricity"),
                  (ADVISE, "--hours-per-day"), (ADVISE, "--years"), (ESTIMATE, "--count"), (ESTIMATE, "--context"),
                  (ESTIMATE, "--electricity")]

CASES: list[Case] = []
for base, opt in NUMBER_OPTIONS:
    for v in NOT_A_NUMBER[:6] if opt != "--budget" else NOT_A_NUMBER:
        CASES.append(Case(f"{base[0]} {opt} {v!r}", _with(base, opt, v), rf"{opt}: .*(not a number|not a finite)"))
    for v in COMMAS[:2] if opt != "--budget" else COMMAS:
        CASES.append(Case(f"{base[0]} {opt} {v!r}", _with(base, opt, v),
                          rf"{opt}: .*commas may only separate thousands"))
    for v in (NONPOSITIVE[:2] if opt != "--electricity" else ["-5"]):
        CASES.append(Case(f"{base[0]} {opt} {v!r}", _with(base, opt, v), rf"{opt}: must be greater than 0"))
    for v in (NOT_FINITE if opt == "--budget" else NOT_FINITE[:1]):
        CASES.append(Case(f"{base[0]} {opt} {v!r}", _with(base, opt, v), rf"{opt}: .*not a (finite )?number"))

CASES += [
    Case("advise --context above the model's maximum", _with(ADVISE, "--context", "100000"), r"--context: .*maximum"),
    Case("advise --context fractional", _with(ADVISE, "--context", "1000.5"), r"--context: must be a whole number"),
    Case("advise --hours-per-day 25", _with(ADVISE, "--hours-per-day", "25"), r"--hours-per-day: at most 24"),
    Case("advise --years 50", _with(ADVISE, "--years", "50"), r"--years: at most 20"),
    Case("advise --electricity 1e6", _with(ADVISE, "--electricity", "1e6"), r"--electricity: .*implausibly high"),
    Case("estimate --count 2.5", _with(ESTIMATE, "--count", "2.5"), r"--count: must be a whole number"),
    Case("estimate --count 1e9", _with(ESTIMATE, "--count", "1e9"), r"--count: must be a whole number"),
]

# ---------------------------------------------------------------------------------------------- strings

LONG = "x" * 300
CASES += [
    Case("advise --model unknown", _with(ADVISE, "--model", "llama-13"), r"--model: unknown model 'llama-13'"),
    Case("advise --model empty", _with(ADVISE, "--model", ""), r"--model: empty; expected"),
    Case("advise --model 300 characters", _with(ADVISE, "--model", LONG), r"--model '(x+)\.\.\.': not a model id"),
    Case("advise --model 300-character path", _with(ADVISE, "--model", f"/tmp/{LONG}/config.json"),
         r"--model '/tmp/x+\.\.\.': not a model id, and not a readable path \(File name too long\)"),
    Case("advise --model 100,000 characters", _with(ADVISE, "--model", "y" * 100_000), r"--model '(y+)\.\.\.'"),
    Case("advise --model NUL byte", _with(ADVISE, "--model", "13b\x00.json"),
         r"--model '13b\\x00\.json': no such file"),
    Case("advise --model escape sequence", _with(ADVISE, "--model", "\x1b]0;owned\x07"),
         r"--model: unknown model '\\x1b\]0;owned\\x07'"),
    Case("advise --model /dev/zero", _with(ADVISE, "--model", "/dev/zero"), r"--model /dev/zero: not a regular file"),
    Case("advise --model /dev/null", _with(ADVISE, "--model", "/dev/null"), r"--model /dev/null: not a regular file"),
    Case("advise --model missing config", _with(ADVISE, "--model", "/nonexistent/config.json"), r"no such file"),
    Case("advise --workload chat", _with(ADVISE, "--workload", "chat"), r"--workload: unknown workload 'chat'"),
    Case("advise --workload empty", _with(ADVISE, "--workload", ""), r"--workload: unknown workload ''"),
    Case("advise --precision fp7", _with(ADVISE, "--precision", "fp7"), r"--precision: unknown precision 'fp7'"),
    Case("advise --currency XYZ", _with(ADVISE, "--currency", "XYZ"), r"--currency: unknown currency 'XYZ'"),
    Case("advise --currency empty", _with(ADVISE, "--currency", ""), r"--currency: unknown currency ''"),
    Case("advise --region mars", _with(ADVISE, "--region", "mars"), r"--region: unknown region 'mars'"),
    Case("advise --deployment cloud", _with(ADVISE, "--deployment", "cloud"), r"--deployment: unknown deployment"),
    Case("advise --why-not unknown GPU", _with(ADVISE, "--why-not", "rtx-9090"), r"--why-not: unknown GPU 'rtx-9090'"),
    Case("advise --format pdf", _with(ADVISE, "--format", "pdf"), r"--format: unknown format 'pdf'"),
    Case("advise --format empty", _with(ADVISE, "--format", ""), r"--format: unknown format ''"),
    Case("advise without --budget", ["advise", "--model", "13b"], r"Missing option '--budget'"),
    Case("advise without --model", ["advise", "--budget", "1"], r"Missing option '--model'"),
    Case("advise unknown option", [*ADVISE, "--colour", "red"], r"No such option:? '?--colour"),
    Case("advise option without value", [*ADVISE, "--region"], r"--region.*requires an argument"),
    Case("advise stray argument", [*ADVISE, "extra"], r"unexpected extra argument"),
    Case("estimate --gpu unknown", _with(ESTIMATE, "--gpu", "rtx4090"), r"--gpu: unknown GPU 'rtx4090'"),
    Case("estimate --gpu empty", _with(ESTIMATE, "--gpu", ""), r"--gpu: unknown GPU ''"),
    Case("estimate --precision auto", _with(ESTIMATE, "--precision", "auto"), r"--precision: estimate needs"),
    Case("estimate --precision unknown", _with(ESTIMATE, "--precision", "fp3"), r"unknown precision 'fp3'"),
    Case("estimate --engine unknown", [*ESTIMATE, "--engine", "tgi"], r"--engine: unknown engine 'tgi'"),
    Case("estimate --format markdown", [*ESTIMATE, "--format", "markdown"], r"--format: unknown format"),
    Case("estimate --workload unknown", [*ESTIMATE, "--workload", "chat"], r"--workload: unknown workload"),
    Case("estimate --model unknown", _with(ESTIMATE, "--model", "llama-99b"), r"--model: unknown model"),
    Case("estimate --model /dev/zero", _with(ESTIMATE, "--model", "/dev/zero"), r"not a regular file"),
    Case("estimate without --gpu", ["estimate", "--model", "13b"], r"Missing option '--gpu'"),
    Case("catalog unknown", ["catalog", "cpus"], r"catalog: unknown catalog 'cpus'"),
    Case("catalog --format yaml", ["catalog", "gpus", "--format", "yaml"], r"--format: unknown format 'yaml'"),
    Case("catalog without argument", ["catalog"], r"Missing argument"),
    Case("rules list --factor unknown", ["rules", "list", "--factor", "price"], r"--factor: unknown factor 'price'"),
    Case("rules list --format xml", ["rules", "list", "--format", "xml"], r"--format: unknown format 'xml'"),
    Case("rules show unknown", ["rules", "show", "precision/nope"], r"rules show: unknown rule 'precision/nope'"),
    Case("rules unknown subcommand", ["rules", "lint"], r"No such command 'lint'"),
    Case("unknown command", ["recommend"], r"No such command 'recommend'"),
    Case("audit --format yaml", ["audit", "--base", "HEAD", "--format", "yaml"], r"--format: unknown format 'yaml'"),
    Case("audit --base unknown", ["audit", "--base", "no-such-rev-xyz"],
         r"audit: cannot resolve revision 'no-such-rev-xyz'"),
    Case("audit --base option-like", ["audit", "--base=--output=/tmp/x"], r"audit: '--output=/tmp/x' is not a git"),
    Case("audit --base with a space", ["audit", "--base", "HEAD main"], r"is not a git revision"),
    Case("audit --head unknown", ["audit", "--base", "HEAD", "--head", "no-such-rev-xyz"],
         r"audit: cannot resolve revision 'no-such-rev-xyz'"),
    Case("audit without --base", ["audit"], r"Missing option '--base'"),
]


# ---------------------------------------------------------------------------------------------- paths and files

def _fifo(name: str) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        os.mkfifo(tmp / name)
        return {}
    return setup


def _dir(name: str) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        (tmp / name).mkdir(parents=True)
        return {}
    return setup


def _file(name: str, content: bytes) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content)
        return {}
    return setup


CASES += [
    Case("advise --model FIFO config.json", _with(ADVISE, "--model", "{tmp}/config.json"), r"not a regular file",
         setup=_fifo("config.json")),
    Case("advise --model directory holding a FIFO config.json", _with(ADVISE, "--model", "{tmp}/m"),
         r"m/config.json: not a regular file", setup=lambda t: (_dir("m")(t), _fifo("m/config.json")(t))[1]),
    Case("advise --model directory without config.json", _with(ADVISE, "--model", "{tmp}/empty"), r"no such file",
         setup=_dir("empty")),
    Case("advise --model config.json that is a directory", _with(ADVISE, "--model", "{tmp}/d.json"),
         r"not a regular file", setup=lambda t: (_dir("d.json")(t), _dir("d.json/config.json")(t))[1]),
    Case("advise --model 5 MiB config.json", _with(ADVISE, "--model", "{tmp}/big.json"), r"too large for a config",
         setup=_file("big.json", b" " * (5 * 2**20))),
    Case("advise --model config.json not JSON", _with(ADVISE, "--model", "{tmp}/c.json"), r"--model .*c\.json",
         setup=_file("c.json", b"{not json")),
    Case("advise --model config.json not UTF-8", _with(ADVISE, "--model", "{tmp}/c.json"), r"--model .*c\.json",
         setup=_file("c.json", b"\xff\xfe{}")),
    Case("advise --model config.json a list", _with(ADVISE, "--model", "{tmp}/c.json"), r"--model .*c\.json",
         setup=_file("c.json", b"[1, 2]")),
    Case("advise --output into a missing directory", [*ADVISE, "--output", "{tmp}/no/such/dir/out.txt"],
         r"--output .*: cannot write: No such file or directory"),
    Case("advise --output is a directory", [*ADVISE, "--output", "{tmp}"],
         r"--output .*: cannot write: Is a directory"),
    Case("advise --output /dev/full", [*ADVISE, "--output", "/dev/full"],
         r"--output /dev/full: cannot write: No space"),
    Case("rules show --scenarios missing", ["rules", "show", "precision/fp8-needs-ada-hopper", "--scenarios",
                                            "{tmp}/nope"], r"nope"),
    Case("rules coverage --scenarios with a FIFO", ["rules", "coverage", "--scenarios", "{tmp}/sc"],
         r"sc/x\.yaml: not a regular file", setup=lambda t: (_dir("sc")(t), _fifo("sc/x.yaml")(t))[1]),
    Case("rules coverage --scenarios malformed", ["rules", "coverage", "--scenarios", "{tmp}/sc"],
         r"sc/x\.yaml:\d+: malformed YAML", setup=_file("sc/x.yaml", b"name: [unclosed\n")),
    Case("rules coverage --scenarios alias bomb", ["rules", "coverage", "--scenarios", "{tmp}/sc"],
         r"sc/x\.yaml:\d+: YAML aliases", setup=_file("sc/x.yaml", b"a: &a [1, 2]\nb: [*a, *a]\n")),
]


# ---------------------------------------------------------------------------------------------- overlay directories

def _facts(edit: Callable[[Path], None] | None = None) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        d = tmp / "facts"
        shutil.copytree(ROOT / "facts", d)
        if edit:
            edit(d)
        return {"GPU_EXPERT_FACTS": str(d)}
    return setup


def _rules(edit: Callable[[Path], None] | None = None) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        d = tmp / "rules"
        shutil.copytree(ROOT / "rules", d)
        if edit:
            edit(d)
        return {"GPU_EXPERT_RULES": str(d)}
    return setup


def _replace(d: Path, name: str, old: str, new: str) -> None:
    """Replace the first match of the regex `old` (the indentation of the files varies)."""
    p = d / name
    text, n = re.subn(old, new, p.read_text(), count=1, flags=re.M)
    assert n == 1, f"{name}: the case's anchor {old!r} is gone"
    p.write_text(text)


def _swap(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / name).unlink()
        make(d / name)
    return edit


def _dup_first_entry(key: str) -> Callable[[Path], None]:
    """Repeat the first `- id:` entry of a catalog list (a team copy-pasting an entry to edit it)."""
    def edit(d: Path) -> None:
        p = d / f"{key}.yaml"
        lines = p.read_text().splitlines(keepends=True)
        start = lines.index(f"{key}:\n") + 1
        dash = lines[start][: lines[start].index("- ") + 2]  # the list's indentation, whatever the file uses
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(dash))
        lines[end:end] = lines[start:end]
        p.write_text("".join(lines))
    return edit


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(12))
RULE_HEAD = "factor: precision\nrules:\n"


def _rule(because: str) -> str:
    return (RULE_HEAD + "  - id: precision/zz-probe\n    title: probe\n    when: {gpu.fp8: false}\n    then: warn\n"
            f"    because: {because}\n    sources: [VLLM_FP8_DOC]\n")


def _add_rule(because: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / "zz_probe.yaml").write_text(_rule(because))
    return edit


FACTS = ["catalog", "gpus"]  # loads the catalog and the rules, renders a table: the cheapest full load
CASES += [
    Case("facts overlay missing", FACTS, r"facts directory not found", env={"GPU_EXPERT_FACTS": "/nonexistent"}),
    Case("facts overlay is a file", FACTS, r"facts directory not found", env={"GPU_EXPERT_FACTS": "/etc/hostname"}),
    Case("facts overlay empty", FACTS, r"facts/gpus\.yaml: missing fact catalog",
         setup=lambda t: (_dir("empty")(t), {"GPU_EXPERT_FACTS": str(t / "empty")})[1]),
    Case("facts gpus.yaml missing", FACTS, r"facts/gpus\.yaml: missing fact catalog",
         setup=_facts(lambda d: (d / "gpus.yaml").unlink())),
    Case("facts gpus.yaml a FIFO", FACTS, r"facts/gpus\.yaml: not a regular file",
         setup=_facts(_swap("gpus.yaml", os.mkfifo))),
    Case("facts gpus.yaml a directory", FACTS, r"facts/gpus\.yaml: not a regular file",
         setup=_facts(_swap("gpus.yaml", os.mkdir))),
    Case("facts gpus.yaml a link to /dev/zero", FACTS, r"facts/gpus\.yaml: not a regular file",
         setup=_facts(_swap("gpus.yaml", lambda p: p.symlink_to("/dev/zero")))),
    Case("facts gpus.yaml a dangling link", FACTS, r"facts/gpus\.yaml: cannot read: No such file",
         setup=_facts(_swap("gpus.yaml", lambda p: p.symlink_to("/nonexistent")))),
    # root reads a mode-0 file anyway, so this one runs only for other users
    *([Case("facts gpus.yaml unreadable", FACTS, r"facts/gpus\.yaml: cannot read: Permission denied",
            setup=_facts(lambda d: (d / "gpus.yaml").chmod(0)))] if os.geteuid() != 0 else []),
    Case("facts gpus.yaml over the size cap", FACTS, r"facts/gpus\.yaml: .* bytes is over the .*-byte limit",
         setup=_facts(lambda d: (d / "gpus.yaml").write_bytes(b"#" * (5 * 2**20)))),
    Case("facts gpus.yaml empty", FACTS, r"facts/gpus\.yaml", setup=_facts(lambda d: (d / "gpus.yaml").write_text(""))),
    Case("facts gpus.yaml not UTF-8", FACTS, r"facts/gpus\.yaml: not UTF-8",
         setup=_facts(lambda d: (d / "gpus.yaml").write_bytes(b"\xff\xfe gpus: []"))),
    Case("facts gpus.yaml a top-level list", FACTS, r"facts/gpus\.yaml",
         setup=_facts(lambda d: (d / "gpus.yaml").write_text("- 1\n- 2\n"))),
    Case("facts gpus.yaml alias bomb", FACTS, r"facts/gpus\.yaml:\d+: YAML aliases .* not allowed",
         setup=_facts(lambda d: (d / "gpus.yaml").write_text(BOMB))),
    Case("facts gpus.yaml nested 200 deep", FACTS, r"facts/gpus\.yaml:\d+: nested deeper than",
         setup=_facts(lambda d: (d / "gpus.yaml").write_text("a: " + "[" * 200 + "]" * 200 + "\n"))),
    Case("facts gpus.yaml malformed", FACTS, r"facts/gpus\.yaml:\d+: malformed YAML",
         setup=_facts(lambda d: _replace(d, "gpus.yaml", "memory_gib: 24", "memory_gib: [24"))),
    Case("facts gpus.yaml python tag", FACTS, r"facts/gpus\.yaml:\d+: malformed YAML",
         setup=_facts(lambda d: (d / "gpus.yaml").write_text("gpus: !!python/object/apply:os.system [id]\n"))),
    Case("facts duplicate gpu id", FACTS, r"facts/gpus\.yaml:\d+: gpu .*: duplicate id",
         setup=_facts(_dup_first_entry("gpus"))),
    Case("facts duplicate model id", FACTS, r"facts/models\.yaml:\d+: model .*: duplicate id",
         setup=_facts(_dup_first_entry("models"))),
    Case("facts duplicate precision id", FACTS, r"facts/precisions\.yaml:\d+: precision .*: duplicate id",
         setup=_facts(_dup_first_entry("precisions"))),
    Case("facts duplicate key", FACTS, r"facts/gpus\.yaml:\d+: malformed YAML: duplicate key 'name'",
         setup=_facts(lambda d: _replace(d, "gpus.yaml", r"^(\s*)name: ", r"\1name: X\n\1name: "))),
    Case("facts negative memory", FACTS, r"facts/gpus\.yaml:\d+: .*memory_gib",
         setup=_facts(lambda d: _replace(d, "gpus.yaml", "memory_gib: 24", "memory_gib: -24"))),
    Case("facts memory as text", FACTS, r"facts/gpus\.yaml:\d+: .*memory_gib",
         setup=_facts(lambda d: _replace(d, "gpus.yaml", "memory_gib: 24", "memory_gib: lots"))),
    Case("rules overlay missing", FACTS, r"rules directory not found", env={"GPU_EXPERT_RULES": "/nonexistent"}),
    Case("rules overlay empty", FACTS, r"no rule files",
         setup=lambda t: (_dir("empty")(t), {"GPU_EXPERT_RULES": str(t / "empty")})[1]),
    Case("rules file a FIFO", FACTS, r"rules/zz\.yaml: not a regular file",
         setup=_rules(lambda d: os.mkfifo(d / "zz.yaml"))),
    Case("rules file a directory", FACTS, r"rules/zz\.yaml: not a regular file",
         setup=_rules(lambda d: (d / "zz.yaml").mkdir())),
    Case("rules file over the size cap", FACTS, r"rules/zz\.yaml: .*-byte limit",
         setup=_rules(lambda d: (d / "zz.yaml").write_bytes(b"#" * (5 * 2**20)))),
    Case("rules file alias bomb", FACTS, r"rules/zz\.yaml:\d+: YAML aliases",
         setup=_rules(lambda d: (d / "zz.yaml").write_text(BOMB))),
    Case("rules file malformed", FACTS, r"rules/zz\.yaml:\d+: malformed YAML",
         setup=_rules(lambda d: (d / "zz.yaml").write_text("factor: [precision\n"))),
    Case("rules because nested loops", FACTS, r"rules/zz_probe\.yaml:\d+: rule 'precision/zz-probe': because: loops",
         setup=_rules(_add_rule('"{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"'))),
    Case("rules because huge power", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: .*'\*\*' is limited",
         setup=_rules(_add_rule('"{{ 9**(9**10) }}"'))),
    Case("rules because huge repetition", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: .*repetition",
         setup=_rules(_add_rule("\"{{ 'x' * 10**9 }}\""))),
    Case("rules because percent formatting", FACTS, r"rules/zz_probe\.yaml:\d+: .*'%' string formatting",
         setup=_rules(_add_rule("\"{{ '%0999999999d' % 1 }}\""))),
    Case("rules because unsafe filter", FACTS, r"rules/zz_probe\.yaml:\d+: .*filter 'center' is not allowed",
         setup=_rules(_add_rule('"{{ gpu.id | center(1000000000) }}"'))),
    Case("rules because num digits", FACTS, r"rules/zz_probe\.yaml:\d+: .*digits must be a whole number",
         setup=_rules(_add_rule('"{{ gpu.memory_gib | num(100000) }}"'))),
    Case("rules because function call", FACTS, r"rules/zz_probe\.yaml:\d+: .*function calls are not allowed",
         setup=_rules(_add_rule('"{{ gpu.id.upper() }}"'))),
    Case("rules because set", FACTS, r"rules/zz_probe\.yaml:\d+: .*\{% set %\} are not allowed",
         setup=_rules(_add_rule('"{% set a = 1 %}{{ a }}"'))),
    Case("rules because typo", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: refers to something the facts do not",
         setup=_rules(_add_rule('"{{ gpu.idd }}"'))),
    Case("rules because syntax error", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: template syntax error",
         setup=_rules(_add_rule('"{{ gpu.id "'))),
    Case("rules because dunder", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: unsafe template",
         setup=_rules(_add_rule('"{{ gpu.__class__ }}"'))),
    Case("rules because too long", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: .* characters; at most",
         setup=_rules(_add_rule('"' + "x" * 3000 + '"'))),
    Case("rules because output too long", FACTS, r"rules/zz_probe\.yaml:\d+: .*because: renders to .* characters",
         setup=_rules(_add_rule("\"{{ 'y' * 9000 }}\""))),
    Case("rules duplicate id", FACTS, r"rules/zz_probe\.yaml:\d+: rule 'precision/fp8-needs-ada-hopper': duplicate id",
         setup=_rules(lambda d: (d / "zz_probe.yaml").write_text(
             _rule('"x"').replace("precision/zz-probe", "precision/fp8-needs-ada-hopper")))),
    Case("rules unknown action", FACTS, r"rules/zz_probe\.yaml:\d+: .*then: 'explode' is not an action",
         setup=_rules(lambda d: (d / "zz_probe.yaml").write_text(_rule('"x"').replace("then: warn", "then: explode")))),
]


# ---------------------------------------------------------------------------------------------- cache states

def _cache(make: Callable[[Path], None]) -> Callable[[Path], dict[str, str]]:
    def setup(tmp: Path) -> dict[str, str]:
        base = tmp / "xdg"
        base.mkdir()
        make(base / "gpu-expert")
        return {"XDG_CACHE_HOME": str(base)}
    return setup


def _world_writable(p: Path) -> None:
    p.mkdir()
    p.chmod(0o777)


def _other_owner(p: Path) -> None:
    p.mkdir(mode=0o700)
    os.chown(p, 65534, 65534)


def _jinja_dir_link(p: Path) -> None:
    p.mkdir(mode=0o700)
    (p / "jinja").symlink_to(p.parent)


def _fifo_entries(p: Path) -> None:
    for sub in ("data", "jinja"):
        (p / sub).mkdir(parents=True, mode=0o700)
    from expert.store import cache

    os.mkfifo(p / "data" / f"{cache.digest(ROOT / 'facts', ROOT / 'rules')}.json")


WARN = 0  # a refused cache: exit 0, one warning line, the answer computed uncached
HTML = [*ADVISE, "--format", "html"]
CASES += [
    Case("cache root a symlink", HTML, r"warning: cache .*gpu-expert is a symbolic link; running uncached", code=WARN,
         setup=_cache(lambda p: p.symlink_to(p.parent))),
    Case("cache root world-writable", HTML, r"warning: cache .* writable by other users .*; running uncached",
         code=WARN, setup=_cache(_world_writable)),
    Case("cache root a file", HTML, r"warning: cache .* is not a directory; running uncached", code=WARN,
         setup=_cache(lambda p: p.write_text(""))),
    Case("cache template dir a symlink", HTML, r"warning: cache .*gpu-expert/jinja is a symbolic link", code=WARN,
         setup=_cache(_jinja_dir_link)),
    *([Case("cache root of another owner", HTML, r"warning: cache .* owned by uid 65534, not by you", code=WARN,
            setup=_cache(_other_owner))] if os.geteuid() == 0 else []),
    Case("cache base world-writable without sticky bit", HTML, r"warning: cache .*xdg is writable by other users",
         code=WARN, setup=lambda t: ((t / "xdg").mkdir(), (t / "xdg").chmod(0o777),
                                     {"XDG_CACHE_HOME": str(t / "xdg")})[2]),
]
# Cache states that are silently ignored: the command succeeds with nothing on stderr.
QUIET = [
    ("cache entries that are FIFOs", _cache(_fifo_entries), {}),
    ("cache home is a file", lambda t: (_file("f", b"")(t), {"XDG_CACHE_HOME": str(t / "f")})[1], {}),
    ("no cache at all", None, {"GPU_EXPERT_NO_CACHE": "1"}),
    ("cache under an unwritable directory", lambda t: ((t / "ro").mkdir(mode=0o500),
                                                        {"XDG_CACHE_HOME": str(t / "ro" / "sub")})[1], {}),
]


def _prepare(tmp_path: Path, monkeypatch, setup, env) -> None:
    monkeypatch.setattr(cachedir, "_warned", set())
    extra = dict(env)
    if setup:
        extra.update(setup(tmp_path) or {})
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    render_mod._env_for.cache_clear()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_the_documented_status(case: Case, tmp_path, monkeypatch):
    _prepare(tmp_path, monkeypatch, case.setup, case.env)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    r = run_cli(*args)
    assert "Traceback" not in r.err + r.out
    assert r.code == case.code, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert re.search(case.msg, lines[0]), lines[0]
    if case.code == 2:
        assert r.out == ""
    else:
        assert "RECOMMENDATION" in r.out.upper() or "<html" in r.out.lower()


@pytest.mark.parametrize("name, setup, env", QUIET, ids=[q[0] for q in QUIET])
def test_odd_cache_states_are_ignored_quietly(name, setup, env, tmp_path, monkeypatch):
    _prepare(tmp_path, monkeypatch, setup, env)
    r = run_cli(*HTML)
    assert r.code == 0 and r.err == "", r.err
    assert "<html" in r.out.lower()


def test_the_catalogue_is_large_enough():
    assert len(CASES) + len(QUIET) >= 150

