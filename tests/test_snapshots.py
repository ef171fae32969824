"""Golden snapshots of the corpus outcomes: a change to a rule or a fact shows up as a diff here.

Rewrite them only on purpose: `expert rules snapshots --update` (after `expert audit --base main`)."""

from __future__ import annotations

from .conftest import run_cli


def test_corpus_outcomes_match_the_committed_snapshots():
    r = run_cli("rules", "snapshots")
    assert r.code == 0, r.out + r.err
