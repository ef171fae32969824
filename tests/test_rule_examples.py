"""Every rule's own examples: `pytest -k precision/fp8-needs-ada-hopper` runs one rule's spec."""

from __future__ import annotations

import pytest

from expert.governance.examples import examples, fired_on
from expert.store import load_all

_, RULES = load_all()
EXAMPLES = examples(RULES)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_rule_example(cat, rules, ex):
    assert fired_on(cat, rules, ex) is ex.expect_fire



def test_every_rule_has_a_firing_and_a_non_firing_example(rules):
    have = {(e.rule.id, e.expect_fire) for e in EXAMPLES}
    missing = [f"{r.id} ({'fires' if want else 'does_not_fire'})" for r in rules.rules for want in (True, False)
               if (r.id, want) not in have]
    assert missing == [], f"{len(missing)} missing examples: " + ", ".join(missing[:10])
