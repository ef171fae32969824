"""The optimised paths give the answers of the plain ones (issue 16): the engine asked once per
equivalence class with verdicts kept across requests, and the estimator's per-process memo.

A sample is compared twice (tables filled, then answered from them); the whole scenario corpus and 1,000
generated requests once each, request by request, as `benchmarks/speed.py --equivalence` does."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import pytest

from expert.decide.advice import advise
from expert.estimate import Config, estimate
from expert.estimate import memo as memo_mod
from expert.governance.scenarios import load_scenarios
from expert.request import build_request
from expert.rulelang import engine as engine_mod

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from speed import generated_requests  # noqa: E402


def _plain(monkeypatch) -> None:
    monkeypatch.setenv(memo_mod.NO_MEMO_ENV, "1")
    monkeypatch.setenv(engine_mod.FRESH_ENV, "1")
    memo_mod.refresh()


def _fast(monkeypatch) -> None:
    monkeypatch.delenv(memo_mod.NO_MEMO_ENV, raising=False)
    monkeypatch.delenv(engine_mod.FRESH_ENV, raising=False)
    memo_mod.refresh()


def _requests() -> list[dict]:
    scenarios = [sc.request for sc in load_scenarios()][::20]
    return scenarios + generated_requests(6, seed=16)


def test_class_path_and_memo_give_the_plain_paths_advice(cat, rules, monkeypatch):
    reqs = _requests()
    _plain(monkeypatch)
    plain = [advise(cat, rules, build_request(cat, **kw)).to_dict() for kw in reqs]
    _fast(monkeypatch)
    # Twice: the first pass fills the class and estimate tables, the second answers from them.
    for _ in range(2):
        fast = [advise(cat, rules, build_request(cat, **kw)).to_dict() for kw in reqs]
        assert fast == plain


def test_whole_scenario_corpus_and_1000_generated_requests_get_the_plain_paths_advice(cat, rules, monkeypatch):
    # The done-when of issue 16: identical advice to the un-optimised path. Plain and optimised alternate per
    # request, so the optimised path answers from tables that earlier, different requests filled.
    reqs = [sc.request for sc in load_scenarios()] + generated_requests(1000, seed=16)
    differ = []
    for kw in reqs:
        _plain(monkeypatch)
        plain = advise(cat, rules, build_request(cat, **kw)).to_dict()
        _fast(monkeypatch)
        if advise(cat, rules, build_request(cat, **kw)).to_dict() != plain:
            differ.append(kw)
    assert len(reqs) > 1100 and differ == []


def test_class_keys_split_exactly_at_the_literals():
    spec = [(0, (10.0, 20.0), frozenset({10.0, 20.0})), (1, None, None)]
    key = lambda v, s="a": engine_mod._class_key((v, s), spec)  # noqa: E731
    # Same side of every literal: one class; either side of, or on, a literal: different classes.
    assert key(11.0) == key(19.5)
    assert len({key(9.9), key(10.0), key(10.1), key(20.0), key(25.0)}) == 5
    # Non-numeric keys stay exact.
    assert key(11.0, "a") != key(11.0, "b")


def test_memo_never_serves_another_catalogs_or_gpus_numbers(cat, monkeypatch):
    _fast(monkeypatch)
    g = cat.gpus["rtx-4090"]
    cfg = Config(model=cat.models["llama-3.1-8b"], gpu=g, count=1, precision=cat.precisions["q4_k_m"])
    first = estimate(cat, cfg)
    assert estimate(cat, cfg) is first  # the same objects: answered from the memo
    faster = dataclasses.replace(g, bandwidth_gbs=g.bandwidth_gbs * 2)
    other = estimate(cat, dataclasses.replace(cfg, gpu=faster))
    assert other is not first
    assert other.throughput["decode_tokens_per_s"] > first.throughput["decode_tokens_per_s"] * 1.2
    overlaid = dataclasses.replace(cat, gpus=dict(cat.gpus))
    assert estimate(overlaid, cfg) is not first
    assert estimate(overlaid, cfg).throughput == first.throughput


def test_the_kept_power_draw_is_never_another_gpus_or_price_bases(cat, monkeypatch):
    # power() keeps a system's draw per catalog, GPU, count, workload and deployment: a GPU with another board
    # power draws more, a dearer basis costs more for the same watts, and the plain path gives the same figures.
    from expert.estimate.power import power

    _fast(monkeypatch)
    g = cat.gpus["l40s"]
    cfg = Config(model=cat.models["llama-3.1-8b"], gpu=g, count=4, precision=cat.precisions["fp8"],
                 electricity_per_kwh=0.10, pue=1.3, deployment="datacenter")
    first = power(cat, cfg, 1000.0, None)
    hotter = power(cat, dataclasses.replace(cfg, gpu=dataclasses.replace(g, board_power_w=g.board_power_w + 100)),
                   1000.0, None)
    assert hotter["gpu_watts"] > first["gpu_watts"]
    dearer = power(cat, dataclasses.replace(cfg, electricity_per_kwh=0.30, pue=1.5), 1000.0, None)
    assert dearer["watts"] == first["watts"]
    assert dearer["energy_cost_per_hour"] == pytest.approx(first["energy_cost_per_hour"] * 3 * 1.5 / 1.3)
    desk = power(cat, dataclasses.replace(cfg, deployment="workstation", workload="dev"), None, None)
    _plain(monkeypatch)
    assert power(cat, cfg, 1000.0, None) == first
    assert power(cat, dataclasses.replace(cfg, deployment="workstation", workload="dev"), None, None) == desk


@pytest.mark.parametrize("switch", [memo_mod.NO_MEMO_ENV, engine_mod.FRESH_ENV])
def test_switches_turn_the_shortcuts_off(switch, monkeypatch):
    monkeypatch.setenv(switch, "1")
    assert memo_mod.memo_disabled() or engine_mod.fresh_firing()


def test_generated_class_functions_agree_with_the_flat_projection(cat, rules):
    from expert.candidates import build_candidates
    from expert.rulelang.facts import candidate_fact

    compiled = engine_mod.default_engine().compile(rules)
    req = build_request(cat, model="70b", budget=400_000, workload="finetune", tokens="1B")
    facts = [candidate_fact(cat, c) for c in build_candidates(cat, req)][:150]
    for factor, keys in compiled.keys.items():
        for f in facts:
            flat = engine_mod._flatten(f, compiled.lookups)
            proj = tuple(flat[k] for k in keys)
            want = engine_mod._class_key(proj, compiled.classes[factor], compiled.pairs[factor],
                                         compiled.strings[factor])
            assert compiled.class_of[factor](f) == want


def test_all_classes_at_once_equal_each_factors_class_and_read_shared_groups_once(cat, rules):
    from expert.candidates import build_candidates
    from expert.rulelang.facts import candidate_fact

    compiled = engine_mod.default_engine().compile(rules)
    for kw in (dict(model="70b", budget=400_000, workload="finetune", tokens="1B"), dict(model="8b", budget=9000),
               dict(model="13b", budget=50_000, region="china", currency="CNY", workload="qlora")):
        facts = [candidate_fact(cat, c) for c in build_candidates(cat, build_request(cat, **kw))]
        for t in compiled.group_tables.values():
            t.clear()
        for f in facts:
            assert compiled.class_all(f) == tuple(compiled.class_of[factor](f) for factor in compiled.names)
        # one entry per distinct group object (the request's, each GPU's...), not per candidate
        assert len(compiled.group_tables["req"]) == 1
        assert len(compiled.group_tables["gpu"]) == len({id(f["gpu"]) for f in facts}) < len(facts)
    # a group of equal content but another object is classed afresh, and alike
    f = facts[0]
    copy = {**f, "gpu": dict(f["gpu"]), "req": dict(f["req"])}
    assert compiled.class_all(copy) == compiled.class_all(f)
    changed = {**f, "req": {**f["req"], "region": "eu" if f["req"]["region"] != "eu" else "us"}}
    assert compiled.class_all(changed) == tuple(compiled.class_of[factor](changed) for factor in compiled.names)


def test_physics_is_shared_across_price_bases_and_power_is_not(cat, monkeypatch):
    # Memory, speed and the plan do not depend on electricity, currency or PUE: the memo computes them once per
    # physical configuration, and only power and energy cost follow the price basis.
    _fast(monkeypatch)
    cfg = Config(model=cat.models["llama-3.1-8b"], gpu=cat.gpus["h100-sxm"], count=8, precision=cat.precisions["bf16"],
                 workload="finetune", electricity_per_kwh=0.10, pue=1.3, deployment="datacenter")
    dearer = dataclasses.replace(cfg, electricity_per_kwh=0.30, currency="EUR")
    a, b = estimate(cat, cfg), estimate(cat, dearer)
    assert a.memory_gib is b.memory_gib and a.plan is b.plan
    assert b.power["energy_cost_per_hour"] == pytest.approx(3 * a.power["energy_cost_per_hour"])
    assert "0.3 EUR/kWh" in " ".join(b.assumptions) and "0.3 EUR/kWh" not in " ".join(a.assumptions)
    _plain(monkeypatch)
    assert estimate(cat, dearer).to_dict() == b.to_dict()


@pytest.mark.parametrize("kw", [dict(model="13b", budget=20000), dict(model="70b", budget=400_000, users=200),
                                dict(model="8b", budget=9000, workload="dev", electricity=0.4),
                                dict(model="70b", budget=2_000_000, workload="finetune", tokens="1B")])
def test_economics_shared_by_a_systems_precisions_equal_their_own(cat, kw):
    # build_candidates computes a system's economics once for all its precisions and loads; each
    # candidate's economics must equal what its own estimate gives.
    from expert.candidates import _economics, build_candidates, gpu_price
    from expert.core.policy import load_policy

    req = build_request(cat, **kw)
    pol = load_policy()
    cands = build_candidates(cat, req, policy=pol)
    assert len({(c.gpu.id, c.gpus) for c in cands}) < len(cands)  # systems do repeat across precisions
    for c in cands:
        price, note = gpu_price(cat, c.gpu, req.currency)
        own = _economics(cat, req, c.gpu, c.estimate, c.gpus, max(c.sizing.replicas, 1), price, note,
                         req.hours_per_day * 365, pol)
        assert own == c.economics, c.label


_MIXED = (dict(model="70b", budget=400_000, workload="finetune", tokens="1B"), dict(model="8b", budget=9000),
          dict(model="13b", budget=50_000, region="china", currency="CNY", workload="qlora"),
          dict(model="405b", budget=3_000_000, workload="training"), dict(model="mixtral-8x7b", budget=30_000,
                                                                             workload="dev"))


def test_classes_computed_from_the_candidate_equal_those_of_its_fact(cat, rules):
    # The advise path classes candidates without building their facts (facts.CANDIDATE_FIELDS expressions): the
    # same class tuple as the built fact's, for every candidate of every workload.
    from expert.candidates import build_candidates
    from expert.rulelang.facts import candidate_fact

    compiled = engine_mod.default_engine().compile(rules)
    n = 0
    for kw in _MIXED:
        for c in build_candidates(cat, build_request(cat, **kw)):
            assert compiled.class_of_candidate(cat, c) == compiled.class_all(candidate_fact(cat, c)), c.label
            n += 1
    assert n > 1000


def test_fire_candidates_gives_each_candidate_the_firings_of_its_fact(cat, rules):
    # Class path (facts built only for the representatives asked about) against every fact asserted afresh.
    from expert.candidates import build_candidates
    from expert.rulelang.facts import candidate_fact

    eng = engine_mod.default_engine()
    for kw in _MIXED:
        cands = build_candidates(cat, build_request(cat, **kw))
        want: dict[int, list[str]] = {}
        for f in eng.fire(rules, [candidate_fact(cat, c) for c in cands], fresh=True):
            want.setdefault(f.fact_id, []).append(f.rule_id)
        for fresh in (False, True):
            got = eng.fire_candidates(rules, cat, cands, fresh=fresh)
            assert {k: list(v) for k, v in got.items()} == want
        assert sum(map(len, want.values())) > len(want)  # candidates with several firings each


def test_a_field_computed_alone_is_the_facts_field(cat):
    from expert.candidates import build_candidates
    from expert.rulelang import FACT_FIELDS, get_path
    from expert.rulelang.facts import candidate_fact, field_value

    for kw in _MIXED[:3]:
        for c in build_candidates(cat, build_request(cat, **kw))[::25]:
            fact = candidate_fact(cat, c)
            for path in FACT_FIELDS:
                assert field_value(cat, c, path) == get_path(fact, path), path


def test_requests_differing_only_in_money_share_their_build_and_get_the_plain_paths_advice(cat, rules, monkeypatch):
    # A budget ladder (up and down, across the desk/datacenter line and the cluster-size cut-off that moves with
    # the budget) shares estimates, sizing, system economics and renting between its requests
    # (candidates._shared_build); each answer must still be the one the request gets alone.
    import expert.candidates as cands

    ladders = [dict(model="8b", workload="inference"), dict(model="70b", workload="finetune", tokens="1B"),
               dict(model="13b", workload="dev")]
    budgets = [3000, 9000, 40_000, 99_000, 101_000, 400_000, 2_000_000, 150_000, 7000]
    reqs = [{**lad, "budget": b} for lad in ladders for b in budgets]
    _plain(monkeypatch)
    plain = [advise(cat, rules, build_request(cat, **kw)).to_dict() for kw in reqs]
    _fast(monkeypatch)
    monkeypatch.setattr(cands, "BUILD_LIMIT", 1000)
    cands._BUILDS.clear()
    fast = [advise(cat, rules, build_request(cat, **kw)).to_dict() for kw in reqs]
    assert fast == plain
    # shared: one build per ladder and deployment (the budget decides desk or datacenter), not one per request
    assert 3 <= len(cands._BUILDS) <= 6 < len(reqs)


def test_once_computes_a_derived_figure_on_first_read_and_keeps_it():
    from expert.core.once import once

    calls = []

    class Rec:
        @once
        def figure(self) -> int:
            """a derived figure"""
            calls.append(1)
            return 42

    r = Rec()
    assert (r.figure, r.figure, len(calls)) == (42, 42, 1)
    assert Rec.figure.__doc__ == "a derived figure" and Rec().figure == 42 and len(calls) == 2


_LADDERS = [dict(model="8b", workload="inference"), dict(model="70b", workload="finetune", tokens="1B"),
            dict(model="13b", workload="dev"), dict(model="405b", workload="training")]
_BUDGETS = [3000, 9000, 40_000, 99_000, 101_000, 400_000, 2_000_000, 150_000, 7000, 5_000_000]


def _ladder_candidates(cat, monkeypatch) -> list[list]:
    import expert.candidates as cands

    _fast(monkeypatch)
    monkeypatch.setattr(cands, "BUILD_LIMIT", 1000)
    cands._BUILDS.clear()
    return [cands.build_candidates(cat, build_request(cat, **lad, budget=b)) for lad in _LADDERS for b in _BUDGETS]


def test_candidates_sharing_a_basis_differ_only_in_the_per_budget_fields(cat, monkeypatch):
    # The engine keeps a candidate's class items per basis except those of vocabulary.PER_BUDGET (and the request's own
    # group): every other field of the fact must then be the same for all candidates of one basis.
    from expert.rulelang import FACT_FIELDS
    from expert.rulelang.facts import field_value
    from expert.rulelang.vocabulary import PER_BUDGET

    groups: dict[tuple, list] = {}
    for cands in _ladder_candidates(cat, monkeypatch):
        for c in cands:
            if c.basis is not None:
                groups.setdefault((id(c.basis), c.min_count, c.lightest_precision), []).append(c)
    shared = [g for g in groups.values() if len(g) > 2]
    assert len(shared) > 200
    differ: set[str] = set()
    for g in shared[::3]:
        for path in FACT_FIELDS:
            values = {repr(field_value(cat, c, path)) for c in g}
            if len(values) > 1:
                differ.add(path)
    assert differ <= PER_BUDGET, differ - PER_BUDGET
    assert {"cost.budget_ratio", "req.budget"} <= differ  # the check sees what a budget changes


def test_classes_kept_per_basis_equal_those_of_the_fact(cat, rules, monkeypatch):
    from expert.rulelang.facts import candidate_fact

    compiled = engine_mod.RuleEngine().compile(rules)
    n = 0
    bases = {}
    for cands in _ladder_candidates(cat, monkeypatch):
        for c in cands:
            assert compiled.class_of_candidate(cat, c) == compiled.class_all(candidate_fact(cat, c)), c.label
            if c.basis is not None:
                n += 1
                bases[id(c.basis)] = c.basis
    assert n > 1000 and sum(1 for b in bases.values() if b.kept) > 500


def test_verdict_texts_kept_per_basis_equal_their_own_rendering(cat, rules, monkeypatch):
    # A rule whose text reads nothing a budget changes renders once per basis; each kept text must be the one its
    # own fact renders, and a rule reading the budget is never kept.
    from expert.decide import ranking
    from expert.rulelang.facts import candidate_fact

    assert not rules.by_id["power_cost/over-budget"].budget_free
    assert rules.by_id["power_cost/over-budget"].text_paths >= {"cost.shortfall", "req.budget", "gpu.id"}
    engine = engine_mod.default_engine()
    n = 0
    bases = {}
    for cands in _ladder_candidates(cat, monkeypatch):
        fired = engine.fire_candidates(rules, cat, cands)
        for c in cands[::7]:
            r = ranking.Ranked(c, tuple(rules.by_id[i] for i in fired.get(c.id, ())), lambda x: candidate_fact(cat, x))
            for v in r.verdicts:
                assert v.text == v.rule.render(candidate_fact(cat, c)), (v.rule.id, c.label)
                n += 1
            if c.basis is not None:
                bases[id(c.basis)] = c.basis
    assert n > 1000 and sum(1 for b in bases.values() for k in b.kept
               if isinstance(k, tuple) and k[0] == "because") > 100


def test_firings_kept_by_class_parts_equal_fresh_firing_over_budget_ladders(cat, rules, monkeypatch):
    # A ladder's later candidates take the firings their class parts had (RuleEngine.fire_candidates): the same as
    # every fact asserted afresh, request by request.
    eng = engine_mod.RuleEngine()
    asked = []
    real = eng._by_class
    monkeypatch.setattr(eng, "_by_class", lambda comp, ids, *a: asked.append(len(ids)) or real(comp, ids, *a))
    total = 0
    bases = {}
    for cands in _ladder_candidates(cat, monkeypatch):
        assert eng.fire_candidates(rules, cat, cands) == eng.fire_candidates(rules, cat, cands, fresh=True)
        total += len(cands)
        bases.update((id(c.basis), c.basis) for c in cands if c.basis is not None)
    assert sum(len(v[1]) for b in bases.values() for v in b.kept.values()) > 500  # firings kept in the bases
    assert sum(asked) < total / 2  # most candidates answered from their kept parts


def test_economics_at_another_budget_equal_dataclasses_replace(cat):
    from expert.candidates import build_candidates

    for c in build_candidates(cat, build_request(cat, model="70b", budget=400_000, workload="finetune",
                                                 tokens="1B"))[::40]:
        e = c.economics
        before = e.capex, e.tco  # derived figures kept on the instance: copied, and still right
        for budget in (1.0, e.capex, 3 * e.capex):
            other = e.at_budget(budget)
            assert other == dataclasses.replace(e, budget=budget)
            assert (other.capex, other.tco, other.budget_ratio, other.shortfall) == (
                before[0], before[1], before[0] / budget, max(0.0, before[0] - budget))
            assert e.budget == c.request.budget  # the original is untouched


def test_candidates_built_without_init_equal_those_built_by_it(cat):
    from expert.candidates import Candidate, build_candidates

    names = [f.name for f in dataclasses.fields(Candidate)]
    cands = build_candidates(cat, build_request(cat, model="13b", budget=20_000))
    for c in cands[::30]:
        assert sorted(vars(c)) == sorted(names)  # every field set, nothing else
        again = Candidate(**{n: getattr(c, n) for n in names})
        assert again == c and again.basis is c.basis and again.label == c.label
    assert not hasattr(Candidate, "__post_init__")


def test_a_ladders_later_candidates_start_with_their_templates_figures_and_each_equals_a_fresh_ones(cat, monkeypatch):
    # From a shared build's third request on, a candidate is a copy of its row's template (Basis.template) with its
    # own id, request and economics, and starts with the derived figures the template computed.
    import expert.candidates as cands
    from expert.candidates import Candidate
    from expert.core.once import once

    # Every derived figure is listed as one that reads no budget: a new one must be weighed before it is copied.
    assert {n for n, v in vars(Candidate).items() if isinstance(v, once)} == Candidate.BUDGET_FREE
    names = [f.name for f in dataclasses.fields(Candidate)]
    _fast(monkeypatch)
    monkeypatch.setattr(cands, "BUILD_LIMIT", 1000)
    cands._BUILDS.clear()
    inherited = 0
    for lad in _LADDERS:
        for b in _BUDGETS:
            req = build_request(cat, **lad, budget=b)
            for c in cands.build_candidates(cat, req):
                assert c.request is req and c.economics.budget == req.budget
                inherited += any(n in vars(c) for n in Candidate.BUDGET_FREE)
                fresh = Candidate(**{n: getattr(c, n) for n in names})
                assert fresh == c
                for n in Candidate.BUDGET_FREE:  # read, as ranking does: the next request's copies start with them
                    assert repr(getattr(c, n)) == repr(getattr(fresh, n)), (c.label, b, n)
    assert inherited > 2000


def test_a_dropped_build_is_freed_without_the_collector(cat, monkeypatch):
    # A template and its basis refer to each other; a dropped build must let go of its templates, or each build a
    # sweep drops waits for a collection (rare in a sweep) and memory grows with the sweep.
    import gc
    import weakref

    import expert.candidates as cands

    _fast(monkeypatch)
    cands._BUILDS.clear()
    gc.collect()
    gc.disable()
    try:
        refs = []
        for model in ("8b", "13b", "70b", "7b", "34b"):
            for b in (20_000, 30_000, 40_000):
                cs = cands.build_candidates(cat, build_request(cat, model=model, budget=b))
            refs.append([weakref.ref(c.basis.template) for c in cs if c.basis is not None][:20])
            assert refs[-1]
            del cs
        assert len(cands._BUILDS) == cands.BUILD_LIMIT == 4
        assert all(r() is None for r in refs[0])  # the first build was dropped: its templates are gone
        assert all(r() is not None for r in refs[-1])  # the last build holds its own
    finally:
        gc.enable()


def test_the_basis_path_is_compiled_only_when_a_candidate_has_a_basis(cat, rules, monkeypatch):
    # A one-off request (no shared build yet) compiles only the plain class function: cold start pays nothing
    # for the budget-ladder path.
    import expert.candidates as cands

    eng = engine_mod.RuleEngine()
    classify = eng.compile(rules).class_of_candidate
    _fast(monkeypatch)
    cands._BUILDS.clear()
    first = cands.build_candidates(cat, build_request(cat, model="13b", budget=20_000))
    assert all(c.basis is None for c in first)
    eng.fire_candidates(rules, cat, first)
    assert "assemble" not in classify.__globals__
    later = cands.build_candidates(cat, build_request(cat, model="13b", budget=21_000))
    assert eng.fire_candidates(rules, cat, later) == eng.fire_candidates(rules, cat, later, fresh=True)
    assert "assemble" in classify.__globals__


def test_the_command_entry_sets_the_batch_collector_threshold_first_and_freezes_what_is_left_at_exit():
    # A subprocess: the threshold is process-wide, and the point is what it is before `expert.cli` loads.
    import subprocess

    from expert.core.gcpolicy import BATCH_GEN0_THRESHOLD

    code = ("import atexit, gc, sys\n"
            "import expert.core.gcpolicy as g\n"
            "seen = []\n"
            "set_it = g.for_command\n"
            "g.for_command = lambda: (seen.append('expert.cli' in sys.modules), set_it())\n"
            # Registered before the entry's freeze, so run after it (atexit is LIFO): the collector's last pass
            # at finalisation then has nothing to walk.
            "atexit.register(lambda: print(gc.get_threshold()[0], seen, gc.get_freeze_count() > 0))\n"
            "sys.argv = ['expert', '--version']\n"
            "from expert.entry import main\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.splitlines()
    assert out[-1] == f"{BATCH_GEN0_THRESHOLD} [False] True"
    scripts = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'expert = "expert.entry:main"' in scripts
    main_py = (Path(__file__).resolve().parent.parent / "expert" / "__main__.py").read_text(encoding="utf-8")
    assert "from .entry import main" in main_py


def test_serving_fit_is_the_fit_and_engine_of_the_full_estimate(cat, monkeypatch):
    # Candidates decide fit, fewest count and lighter precision from serving_fit; an estimate must agree on every
    # GPU x count x precision it is asked of, across engines and contexts, and a training config is refused.
    from expert.estimate import serving_fit
    _plain(monkeypatch)
    model = cat.models["llama-2-13b"]
    seen = 0
    for g in cat.gpus.values():
        for n in (1, 2, 8):
            for p in cat.precisions.values():
                for workload, context in (("inference", 4096), ("dev", 32768)):
                    cfg = Config(model=model, gpu=g, count=n, precision=p, workload=workload, context=context)
                    est, fit = estimate(cat, cfg), serving_fit(cat, cfg)
                    assert (fit.fits, fit.engine, fit.config) == (est.fits, est.engine, est.config), cfg
                    seen += est.fits
    assert seen > 0
    with pytest.raises(ValueError, match="training"):
        serving_fit(cat, Config(model=model, gpu=cat.gpus["h100-sxm"], count=8, precision=cat.precisions["bf16"],
                                workload="finetune"))


def test_an_inference_advise_never_imports_the_training_plan_and_a_lazy_name_still_resolves():
    import subprocess

    code = ("import sys\n"
            "from expert.cli.api import advise\n"
            "assert advise('13b', 20000)['options']\n"
            "print('expert.estimate.plan' in sys.modules, 'expert.estimate.training' in sys.modules)\n"
            "from expert.estimate import Plan, plan_training, train_rate\n"
            "print(Plan.__name__, callable(plan_training), callable(train_rate))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.splitlines() == ["False False", "Plan True True"], out.stderr
    import expert.estimate as est_mod
    with pytest.raises(AttributeError):
        est_mod.no_such_name  # noqa: B018


def test_config_of_gives_the_constructors_config(cat):
    # Config.of must name every field in declaration order: a field added to Config and not to it fails here.
    names = [f.name for f in dataclasses.fields(Config)]
    assert list(inspect.signature(Config.of).parameters) == names
    vals = (cat.models["llama-3.1-8b"], cat.gpus["rtx-4090"], 2, cat.precisions["q4_k_m"], "lora", 4096, 4, "vllm",
            "fp8", 0.2, "CNY", 1.3, "datacenter")
    fast, plain = Config.of(*vals), Config(*vals)
    assert fast == plain and repr(fast) == repr(plain) and vars(fast) == vars(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.count = 3


def test_config_but_and_plan_copy_equal_dataclasses_replace(cat, monkeypatch):
    # The estimator's copies with a few fields changed (the serving capacity's KV length, the plan search's
    # canonical precision, a priced copy of the chosen plan) must be replace()'s, and refuse what it refuses.
    from expert.estimate import plan_training

    cfg = Config(cat.models["llama-3.1-8b"], cat.gpus["rtx-4090"], 2, cat.precisions["q4_k_m"], "lora", 4096, 4,
                 "vllm", "fp8", 0.2, "CNY", 1.3, "datacenter")
    for changes in ({}, {"context": 8192, "batch": 1}, {"precision": cat.precisions["bf16"], "engine": None,
                                                         "kv_cache": None}):
        fast, plain = cfg.but(**changes), dataclasses.replace(cfg, **changes)
        assert fast == plain and vars(fast) == vars(plain)
    with pytest.raises(TypeError, match="no field 'contxt'"):
        cfg.but(contxt=1)
    _fast(monkeypatch)
    train = Config(cat.models["llama-3.1-8b"], cat.gpus["h100-sxm"], 8, cat.precisions["bf16"], "finetune")
    p = plan_training(cat, train, worded=False)
    assert p.full is not None and p.detailed() is p.detailed()  # a detailed plan is kept on the copy ...
    q, r = p.copy(notes=["x"], cost={}), dataclasses.replace(p, notes=["x"], cost={})
    assert "_detailed" not in vars(q) and vars(q) == vars(r)
    assert q.detailed() is not p.detailed()  # ... and never handed to its copies
    with pytest.raises(TypeError, match="no field 'note'"):
        p.copy(note=[])


def _row_from_view(doc: dict) -> dict:
    # What `expert sweep` wrote from the whole view before Advice.sweep_row: the reference it must equal.
    r = doc["recommendation"] or doc["cheapest_over_budget"] or {}
    dec = doc["decision"] or {}
    q = doc["request"]
    return {"model": q["model"], "workload": q["workload"], "budget": q["budget"], "currency": q["currency"],
            "pick": doc["recommendation"]["label"] if doc["recommendation"] else None,
            "presented": "pick" if doc["recommendation"] else "cheapest_over_budget" if r else None,
            "gpu": r.get("gpu"), "count": r.get("count"), "replicas": r.get("replicas"),
            "precision": r.get("precision"), "capex": r.get("capex"), "gpu_capex": r.get("gpu_capex"),
            "platform_capex": r.get("platform_capex"), "tco": r.get("tco"),
            "cost_per_million_tokens": r.get("cost_per_million_tokens"), "train_days": r.get("train_days"),
            "run_cost": r.get("run_cost"), "delivers": dec.get("delivers"), "unit_cost": dec.get("unit_cost"),
            "buy_or_rent": dec.get("buy_or_rent"), "nothing_fits_budget": doc["nothing_fits_budget"], "error": None}


def test_a_sweep_row_has_the_views_figures(cat, rules, monkeypatch):
    # Over the scenario corpus, generated requests and a budget ladder (picks, nothing fitting, every workload).
    from speed import budget_requests

    _fast(monkeypatch)
    reqs = [sc.request for sc in load_scenarios()] + generated_requests(150, seed=3) + budget_requests(60)
    kinds = set()
    for kw in reqs:
        adv = advise(cat, rules, build_request(cat, **kw))
        row = adv.sweep_row()  # before to_dict: nothing the view computes on the way is needed
        assert row == _row_from_view(adv.to_dict(detail=False)), kw
        kinds.add((row["presented"], row["workload"]))
    assert {p for p, _ in kinds} >= {"pick", "cheapest_over_budget"} and len({w for _, w in kinds}) >= 6


def test_requests_differing_only_in_users_share_one_replica_search_and_size_as_alone(cat, monkeypatch):
    # The most users a replica holds does not read the number of users: sizing 1, 4, 16 and 400 users of one
    # configuration searches the loads once, and each sizing equals the one the plain path works out alone.
    from expert.candidates import size
    from expert.core.policy import load_policy
    from expert.estimate import serving_fit

    pol = load_policy()
    model = cat.models["llama-2-13b"]
    cfg = Config(model=model, gpu=cat.gpus["l40s"], count=1, precision=cat.precisions["fp8"], workload="inference",
                 context=4096)
    _fast(monkeypatch)
    memo_mod.SERVING.clear()
    searched = []
    real = memo_mod.SERVING.get

    def spy(c, cfg_, extra, compute):
        if extra[0] == "replica":
            return real(c, cfg_, extra, lambda: searched.append(extra) or compute())
        return real(c, cfg_, extra, compute)

    monkeypatch.setattr(memo_mod.SERVING, "get", spy)
    fast = {}
    for users in (1, 4, 16, 400):
        req = build_request(cat, model="13b", budget=50_000, users=users, context=4096)
        fast[users] = size(cat, req, serving_fit(cat, cfg), pol)
    assert len(searched) == 1
    assert fast[400].replicas > fast[1].replicas == 1 and fast[400].users_per_replica == fast[1].users_per_replica
    monkeypatch.undo()
    _plain(monkeypatch)
    for users, got in fast.items():
        req = build_request(cat, model="13b", budget=50_000, users=users, context=4096)
        assert size(cat, req, serving_fit(cat, cfg), pol) == got


def test_kept_layouts_are_a_fresh_searchs_and_shared_only_by_the_same_shape(cat, monkeypatch):
    # A training search's layouts are kept per model, count, node, sequence, micro-batch and global batch: another
    # GPU with the same node shares them, another count or sequence does not, and the plain path builds equal ones.
    from expert.estimate import plan as plan_mod

    _fast(monkeypatch)
    m = cat.models["llama-3.1-70b"]
    cfg = Config(m, cat.gpus["h100-sxm"], 16, cat.precisions["bf16"], "finetune", 4096, 1)
    tokens = plan_mod._global_tokens(cat, cfg, None)
    first = plan_mod._layouts(cat, cfg, tokens)
    assert plan_mod._layouts(cat, dataclasses.replace(cfg, gpu=cat.gpus["h200-sxm"]), tokens) is first
    longer = plan_mod._layouts(cat, dataclasses.replace(cfg, context=8192), tokens)
    more = plan_mod._layouts(cat, dataclasses.replace(cfg, count=32), tokens)
    assert longer is not first and more is not first and more != first
    listed = plan_mod.layouts(cat, cfg, tokens)
    listed.clear()  # the public list is the caller's own
    assert plan_mod._layouts(cat, cfg, tokens)[0]
    _plain(monkeypatch)
    assert plan_mod._layouts(cat, cfg, tokens) == first and plan_mod._layouts(cat, cfg, tokens) is not first
    assert plan_mod._layouts(cat, dataclasses.replace(cfg, context=8192), tokens) == longer
