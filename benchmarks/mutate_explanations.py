"""Mutation check of the explanation: does the suite notice when a line of what the reader is told breaks?

Each mutation removes or breaks one line of the explanation path (templates, view model, verdict
text). It is applied to a throw-away copy of the checkout, the explanation tests run there, and a
mutation the tests do not notice is reported as SURVIVED. Exit status 1 if any survives.

    python benchmarks/mutate_explanations.py           # the explanation tests (golden, snapshots, CLI)
    python benchmarks/mutate_explanations.py --full    # the whole suite per mutation (slow)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (what breaks, file, exact text, replacement): one line each.
MUTATIONS = [
    ("text: the `why:` verdict lines", "templates/advice.txt.j2",
     '    {{ {"prefer": "+", "penalize": "-", "warn": "!", "suggest": ">", "reject": "x"}[v.action] }} '
     "[{{ v.rule }}] {{ v.because }}\n", ""),
    ("text: suggestions", "templates/advice.txt.j2", "  - {{ s }}\n", ""),
    ("text: assumptions", "templates/advice.txt.j2", "  - {{ a }}\n", ""),
    ("markdown: `Values:` of each verdict", "templates/advice.md.j2",
     "  Values: {% for k, val in v[\"values\"].items() %}", "  {% for k, val in v[\"values\"].items() %}"),
    ("markdown: `Sources:` of each verdict", "templates/advice.md.j2",
     ". Sources: {% for s in v.sources %}", ". {% for s in v.sources %}"),
    ("markdown: risks (warnings)", "templates/advice.md.j2", "- `{{ w.rule }}`: {{ w.because }}.\n", ""),
    ("markdown: the sources list", "templates/advice.md.j2",
     "- `{{ s.id }}`: {% if s.url %}[{{ s.cite }}]({{ s.url }}){% else %}{{ s.cite }}{% endif %}\n", ""),
    ("html: the factor list items", "templates/advice.html.j2",
     '{% for v in fired %}<li class="{{ v.action }}">', '{% for v in fired if false %}<li class="{{ v.action }}">'),
    ("html: source links", "templates/advice.html.j2",
     '<a href="{{ s.url }}">{{ s.cite }}</a>', "{{ s.cite }}"),
    ("view model: suggestions", "expert/decide/advice.py",
     "return list(dict.fromkeys(texts))[:MAX_SUGGESTIONS]", "return []"),
    ("view model: warnings", "expert/decide/advice.py",
     '"warnings": ([self.verdict_dict(v) for v in pick.verdicts if v.action == "warn"] if pick else [])',
     '"warnings": ([] if pick else [])'),
    ("view model: the decision numbers", "expert/decide/advice.py", '"decision": self.decision(),',
     '"decision": {},'),
    ("text: the requirement sized for", "templates/advice.txt.j2",
     "  sized for: {{ requirement_text(requirement, r) }}", "  sized for:"),
    ("text: good / better / best", "templates/advice.txt.j2",
     '  {{ "%-6s" | format(a.role) }} {{ headline(a, r.currency) }}: {{ a.why }}', '  {{ a.role }}'),
    ("why-not: what would have to change", "templates/whynot.txt.j2", "  to win: {{ c.to_win }}\n", ""),
    ("view model: sources of the pick", "expert/decide/advice.py", "out[sid] = self.cite(sid)", "pass"),
    ("view model: verdict source links", "expert/decide/advice.py",
     'return {"id": sid, "cite": src.cite(), "url": src.address()}',
     'return {"id": sid, "cite": src.cite(), "url": ""}'),
    ("verdict text: `because` rendered", "expert/decide/ranking.py",
     "return self.rule.render(self.fact)", "return self.rule.title"),
    ("why-not: condition trace", "templates/whynot.txt.j2", "{% for cond in k.conditions %}", "{% for cond in [] %}"),
]

EXPLANATION_TESTS = ["tests/test_snapshots.py", "tests/test_cli.py"]


def _copy_tree(dest: Path) -> None:
    for name in ("expert", "templates", "facts", "rules", "tests", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


def run(full: bool) -> int:
    survived = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tree"
        base.mkdir()
        _copy_tree(base)
        env = {**os.environ, "PYTHONPATH": str(base), "GPU_EXPERT_NO_CACHE": "1",
               "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        tests = ["tests"] if full else EXPLANATION_TESTS
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        # The control: unmutated, the tests must pass in the copy, or "caught" would mean nothing.
        base_run = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True)
        if base_run.returncode != 0:
            print("the unmutated copy fails its tests; fix the suite first:\n" + base_run.stdout[-3000:])
            return 2
        for what, rel, old, new in MUTATIONS:
            path = base / rel
            original = path.read_text(encoding="utf-8")
            if original.count(old) != 1:
                print(f"STALE     {what}: the text to mutate is not found once in {rel} (update the script)")
                survived.append(what)
                continue
            path.write_text(original.replace(old, new), encoding="utf-8")
            t0 = time.perf_counter()
            res = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True)
            took = time.perf_counter() - t0
            path.write_text(original, encoding="utf-8")
            if res.returncode == 0:
                survived.append(what)
                print(f"SURVIVED  {what} ({rel}, {took:.1f} s)")
            else:
                print(f"caught    {what} ({rel}, {took:.1f} s)")
    print(f"{len(MUTATIONS) - len(survived)} of {len(MUTATIONS)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run the whole suite for each mutation")
    sys.exit(run(ap.parse_args().full))
