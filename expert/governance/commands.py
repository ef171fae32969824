"""Rule governance: `expert rules list|show|check|coverage` and `expert audit`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from ..core.errors import InputError
from ..core.optiontypes import Listed


def _factors() -> tuple[str, ...]:
    from ..rulelang import FACTORS

    return FACTORS

CHECKOUT = ("needs a checkout of gpu-expert (its scenario corpus, tests/scenarios, is not in the installed "
            "package): run it inside the repository or pass --scenarios DIR")


def _scenario_dir(path: str | None, command: str = "this command") -> Path:
    from .scenarios import default_dir, scenario_dir

    if path is None and not default_dir().is_dir():
        raise InputError(f"{command} {CHECKOUT}")
    return scenario_dir(path)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _progress_write(text: str) -> None:
    # Our own text (counts and a fixed label, no data): past the CLI's control-character filter, which
    # would drop the carriage return and the erase-line sequence that keep it on one line.
    stream = getattr(sys.stderr, "_stream", sys.stderr)
    stream.write(text)
    stream.flush()


@contextlib.contextmanager
def progress(label: str, scenarios: Path, passes: int = 1) -> Iterator[None]:
    """A progress line on stderr while `label` runs the corpus (`passes` times), only when stderr is a
    terminal; erased when done, so what the command prints is the same as without it."""
    if not _stderr_is_tty():
        yield
        return
    from .scenarios import on_each_scenario

    total = passes * len(list(scenarios.glob("*.yaml")))
    done = [0]

    def tick(name: str) -> None:
        done[0] += 1
        _progress_write(f"\r\x1b[K{label}: {min(done[0], total)}/{total} scenario runs")

    _progress_write(f"{label}: loading facts and rules...")
    try:
        with on_each_scenario(tick):
            yield
    finally:
        _progress_write("\r\x1b[K")


def register(cli: click.Group) -> None:
    cli.add_command(rules_group)
    cli.add_command(audit)


@click.group("rules")
def rules_group() -> None:
    """Inspect and check the rules under rules/."""


@rules_group.command("list")
@click.option("--factor", default=None, type=Listed(_factors), help="Only this factor's rules.")
@click.option("--format", "fmt", default="text", show_default=True, type=Listed(("text", "json")))
def rules_list(factor: str | None, fmt: str) -> None:
    """Every rule: id, factor, action, title."""
    from ..rulelang import FACTORS
    from ..store import load_all

    if fmt not in ("text", "json"):
        raise InputError(f"--format: unknown format {fmt!r}; allowed: text, json")
    _, rules = load_all()
    if factor and factor not in FACTORS:
        raise InputError(f"--factor: unknown factor {factor!r}; allowed: {', '.join(FACTORS)}")
    rows = [r for r in rules.rules if not factor or r.factor == factor]
    if fmt == "json":
        click.echo(json.dumps([{"id": r.id, "factor": r.factor, "action": r.action.kind,
                                "weight": r.action.weight, "title": r.title} for r in rows], indent=2))
        return
    for r in rows:
        act = r.action.kind + (f" {r.action.weight:g}" if r.action.kind in ("prefer", "penalize") else "")
        click.echo(f"{r.id:50} {r.factor:12} {act:14} {r.title}")


@rules_group.command("show")
@click.argument("rule_id")
@click.option("--scenarios", default=None, help="Scenario corpus directory (default tests/scenarios).")
def rules_show(rule_id: str, scenarios: str | None) -> None:
    """One rule, its source, and the corpus scenarios in which it fires."""
    import yaml

    from ..request import closest
    from ..store import load_all
    from .scenarios import coverage, load_scenarios

    cat, rules = load_all()
    if rule_id not in rules.by_id:
        raise InputError(f"rules show: unknown rule {rule_id!r}; closest: {closest(rule_id, list(rules.by_id))}")
    r = rules.by_id[rule_id]
    # Before printing anything: a bad --scenarios is one line on stderr, not half a page and then an error.
    cov = coverage(cat, rules, load_scenarios(_scenario_dir(scenarios, "rules show")))[rule_id]
    click.echo(f"{r.file}:{r.line}")
    click.echo(yaml.safe_dump(r.raw, sort_keys=False, allow_unicode=True, width=100).rstrip())
    click.echo("")
    if cov:
        click.echo(f"fires in {len(cov)} scenario(s):")
        for name, n in cov:
            click.echo(f"  {name}: on {n} candidate(s)")
    else:
        click.echo("fires in no scenario of the corpus (a dead rule)")


@rules_group.command("coverage")
@click.option("--scenarios", default=None, help="Scenario corpus directory (default tests/scenarios).")
def rules_coverage(scenarios: str | None) -> None:
    """How often each rule fires across the scenario corpus."""
    from ..store import load_all
    from .scenarios import coverage, load_scenarios

    d = _scenario_dir(scenarios, "rules coverage")
    with progress("rules coverage", d):
        cat, rules = load_all()
        scs = load_scenarios(d)
        cov = coverage(cat, rules, scs)
    click.echo(f"{'rule':50} {'scenarios':>9} {'firings':>8}")
    for rid in sorted(cov, key=lambda k: (len(cov[k]), k)):
        hits = cov[rid]
        click.echo(f"{rid:50} {len(hits):9} {sum(n for _, n in hits):8}")
    dead = [rid for rid, hits in cov.items() if not hits]
    click.echo(f"\n{len(cov) - len(dead)} of {len(cov)} rules fire in the {len(scs)} scenarios"
               + (f"; dead: {', '.join(dead)}" if dead else ""))


def check_problems(facts_dir: Path | None = None, rules_dir: Path | None = None,
                   scenarios_dir: Path | None = None) -> list[str]:
    """Everything `expert rules check` reports, as `file:line: rule-id: message` lines."""
    from ..catalog import load_catalog
    from ..core.errors import ExpertError
    from ..rulelang import load_rules
    from .scenarios import load_scenarios, run_scenario

    problems: list[str] = []
    rules = load_rules(rules_dir, problems=problems, probe=True)
    try:
        cat = load_catalog(facts_dir)
    except ExpertError as exc:
        return [*problems, str(exc)]
    from ..core.paths import data_dir
    from ..rulelang import check_sources
    from ..store import policy_problems

    problems += check_sources(rules, cat.sources)
    try:
        problems += policy_problems(rules_dir or data_dir("rules"), cat)
    except ExpertError as exc:
        problems.append(str(exc))
    canon: dict[str, list] = {}
    for r in rules.rules:
        canon.setdefault(json.dumps(r.when, sort_keys=True), []).append(r)
    for same in canon.values():
        kinds = {r.action.kind for r in same}
        if "reject" in kinds and "prefer" in kinds:
            rej = next(r for r in same if r.action.kind == "reject")
            for other in same:
                if other.action.kind == "prefer":
                    problems.append(f"{other.file}:{other.line}: {other.id}: prefers what {rej.id} rejects "
                                    "under the same condition")
    try:
        scs = load_scenarios(scenarios_dir)
    except ExpertError as exc:
        return [*problems, str(exc)]
    fired_on: dict[str, set[tuple[str, int]]] = {r.id: set() for r in rules.rules}
    for sc in scs:
        try:
            result = run_scenario(cat, rules, sc)
        except ExpertError as exc:
            problems.append(f"{sc.path}: scenario {sc.name}: {exc}")
            continue
        for f in result.outcome.ranked + result.outcome.rejected:
            for v in f.verdicts:
                fired_on[v.rule.id].add((sc.name, f.candidate.id))
    for r in rules.rules:
        if not fired_on[r.id]:
            problems.append(f"{r.file}:{r.line}: {r.id}: fires in no scenario of the corpus (dead rule)")
    rejecting = [r for r in rules.rules if r.action.kind == "reject"]
    preferring = [r for r in rules.rules if r.action.kind == "prefer"]
    for rej in rejecting:
        for pref in preferring:
            a, b = fired_on[rej.id], fired_on[pref.id]
            if a and a == b and json.dumps(rej.when, sort_keys=True) != json.dumps(pref.when, sort_keys=True):
                problems.append(f"{pref.file}:{pref.line}: {pref.id}: prefers exactly the candidates "
                                f"{rej.id} rejects in every scenario")
    return problems


@rules_group.command("check")
@click.option("--scenarios", default=None, help="Scenario corpus directory (default tests/scenarios).")
def rules_check(scenarios: str | None) -> None:
    """Validate every rule file and report all problems at once (exit 1 on any)."""
    d = _scenario_dir(scenarios, "rules check")
    with progress("rules check", d):
        problems = check_problems(scenarios_dir=d)
    for p in problems:
        click.echo(p)
    from ..catalog import source_report
    from ..store import load_all

    click.echo(source_report(load_all()[0]).line())
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("rules check: no problems")


@rules_group.command("docs")
@click.option("--output", "out_dir", default="docs/rules", show_default=True, help="Directory of the pages.")
@click.option("--check", is_flag=True, help="Exit 1 if the committed pages differ from the rules (CI).")
def rules_docs(out_dir: str, check: bool) -> None:
    """Generate the rule reference (one page per factor) from rules/*.yaml."""
    from ..store import load_all
    from .ruledocs import write_docs

    cat, rules = load_all()
    changed = write_docs(rules, cat, Path(out_dir), check=check)
    for name in changed:
        click.echo(f"{'differs' if check else 'wrote'}: {Path(out_dir) / name}")
    if check and changed:
        click.echo("the rule reference is out of date: run `expert rules docs`", err=True)
        sys.exit(1)
    if not changed:
        click.echo("rule reference: up to date")


@rules_group.command("snapshots")
@click.option("--scenarios", default=None, help="Scenario corpus directory (default tests/scenarios).")
@click.option("--update", is_flag=True, help="Rewrite the snapshot files (review the diff before committing).")
def rules_snapshots(scenarios: str | None, update: bool) -> None:
    """Compare (or with --update, rewrite) the corpus outcomes in tests/snapshots/ and the rendered
    golden outputs in tests/golden/; drift is printed as a unified diff."""
    from ..store import load_all
    from .golden import check_golden, compare, golden_dir, pin_today
    from .scenarios import load_scenarios, run_scenario, snapshot, snapshot_dir

    pin_today()
    d = _scenario_dir(scenarios, "rules snapshots")
    cat, rules = load_all()
    out_dir = snapshot_dir(d)
    drift: list[str] = []
    corpus = load_scenarios(d)
    for sc in corpus:
        text = json.dumps(snapshot(run_scenario(cat, rules, sc)), indent=2, sort_keys=True) + "\n"
        path = out_dir / f"{sc.name}.json"
        old = path.read_text() if path.exists() else None
        if old == text:
            continue
        if update:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            click.echo(f"updated {path}")
        else:
            drift.append(sc.name)
            for line in compare(old, text, f"snapshots/{path.name}"):
                click.echo(line)
    diffs, written = check_golden(cat, rules, corpus, golden_dir(d), update=update)
    for path in written:
        click.echo(f"updated {path}")
    for line in diffs:
        click.echo(line)
    n_golden = sum(1 for line in diffs if line.startswith("--- "))
    if drift or n_golden:
        click.echo(f"{len(drift)} snapshot(s) and {n_golden} golden output(s) differ; review with "
                   "`expert audit --base main`, then `expert rules snapshots --update`", err=True)
        sys.exit(1)
    if not update:
        click.echo("snapshots: all match")


@click.command()
@click.option("--base", "base_rev", required=True, help="Git revision to compare against (e.g. main, HEAD~1).")
@click.option("--head", "head_rev", default=None, help="Git revision to audit (default: the working tree).")
@click.option("--scenarios", default=None, help="Scenario corpus directory (default tests/scenarios).")
@click.option("--format", "fmt", default="markdown", show_default=True, type=Listed(("markdown", "json")))
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when any recommendation changes.")
def audit(base_rev: str, head_rev: str | None, scenarios: str | None, fmt: str, fail_on_change: bool) -> None:
    """Show which recommendations a change to rules/ or facts/ flips, and why."""
    if fmt not in ("markdown", "json"):
        raise InputError(f"--format: unknown format {fmt!r}; allowed: markdown, json")

    from .audit import repo_root, run_audit, to_markdown

    try:
        repo_root(Path.cwd())
    except InputError:
        raise InputError("audit needs a git checkout of gpu-expert (it compares rules/ and facts/ between "
                         "revisions): run it inside the repository") from None
    d = _scenario_dir(scenarios, "audit")
    with progress("audit", d, passes=2):
        rep = run_audit(base_rev, head_rev, d)
    click.echo(json.dumps(rep, indent=2) if fmt == "json" else to_markdown(rep), nl=fmt != "json" or True)
    if fail_on_change and rep["changed"]:
        sys.exit(1)
