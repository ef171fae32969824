"""The cost model, checked against numbers computed by hand from facts/platforms.yaml and facts/gpus.yaml."""

from __future__ import annotations

import pytest

from expert.candidates import build_candidates, platform_cost
from expert.request import build_request


def _one(cat, req, gpu, count, precision):
    return next(c for c in build_candidates(cat, req, [cat.gpus[gpu]])
                if c.count == count and c.precision.id == precision)


def test_platform_prices_by_deployment_and_form_factor(cat):
    ws = build_request(cat, model="8b", budget=5000, workload="dev")
    dc = build_request(cat, model="8b", budget=50000, deployment="datacenter")
    plat = cat.platforms["platforms"]
    # One or two desk-side cards go in the buyer's desktop; three or four need an HEDT host.
    assert platform_cost(cat, ws, cat.gpus["rtx-4090"], 1)[0] == 0
    assert platform_cost(cat, ws, cat.gpus["rtx-4060-ti-16gb"], 2)[0] == 0
    assert platform_cost(cat, ws, cat.gpus["rtx-a6000"], 4)[0] == plat["hedt"]["price_usd"]
    # Datacenter PCIe cards: the smallest server that takes them.
    assert platform_cost(cat, dc, cat.gpus["l40s"], 1)[0] == plat["pcie-server-2"]["price_usd"]
    assert platform_cost(cat, dc, cat.gpus["l40s"], 3)[0] == plat["pcie-server-4"]["price_usd"]
    assert platform_cost(cat, dc, cat.gpus["l40s"], 8)[0] == plat["pcie-server"]["price_usd"]
    # Bare modules need a baseboard server per 8 GPUs, plus the cluster network beyond one node.
    net = plat["cluster-network-per-node"]["price_usd"]
    assert platform_cost(cat, dc, cat.gpus["mi300x"], 8)[0] == plat["baseboard-server"]["price_usd"]
    assert platform_cost(cat, dc, cat.gpus["mi300x"], 16)[0] == 2 * plat["baseboard-server"]["price_usd"] + 2 * net
    # A price that is a share of an HGX system already holds its server.
    assert platform_cost(cat, dc, cat.gpus["h100-sxm"], 8)[0] == 0
    assert platform_cost(cat, dc, cat.gpus["h100-sxm"], 16)[0] == 2 * net


def test_tco_by_hand_for_a_datacenter_card(cat):
    req = build_request(cat, model="8b", budget=50000, deployment="datacenter", users=1, hours_per_day=24, years=3)
    c = _one(cat, req, "l40s", 1, "fp8")
    e = c.economics
    g = cat.gpus["l40s"]
    plat = cat.platforms
    assert e.gpu_capex == g.price_usd
    assert e.platform_capex == plat["platforms"]["pcie-server-2"]["price_usd"]
    energy_year = c.estimate.power["energy_cost_per_hour"] * 24 * 365
    assert e.energy_per_year == pytest.approx(energy_year)
    # Colocation is on the provisioned IT load: the card's board power plus the 2-GPU server's rated host power.
    kw = (g.board_power_w + plat["platforms"]["pcie-server-2"]["host_power_w"]) / 1000
    hosting_year = kw * 12 * plat["hosting"]["colocation_usd_per_kw_month"]["value"]
    assert e.hosting_per_year == pytest.approx(hosting_year)
    assert c.tco == pytest.approx(g.price_usd + e.platform_capex + 3 * (energy_year + hosting_year))


def test_rent_for_a_run_is_its_duration_plus_setup(cat):
    req = build_request(cat, model="8b", budget=500000, workload="finetune", tokens="1B")
    c = _one(cat, req, "h100-sxm", 8, "bf16")
    setup = cat.platforms["rent"]["run_setup_fraction"]["value"]
    per_hour = cat.gpus["h100-sxm"].rent_usd_per_hour * 8
    hours = c.train_days * 24 * (1 + setup)
    assert c.rent.per_hour == pytest.approx(per_hour)
    assert c.rent.total == pytest.approx(per_hour * hours)
    # Break-even in runs: capex / (rent per run - own energy per run).
    run_energy = c.economics.energy_per_year / (365 * req.hours_per_day) * 24 * c.train_days
    runs = c.capex / (c.rent.total - run_energy)
    assert f"{runs:,.1f} runs" in c.rent.break_even


def test_rent_for_a_service_and_its_break_even_month(cat):
    req = build_request(cat, model="8b", budget=50000, deployment="datacenter", users=1, hours_per_day=12, years=2)
    c = _one(cat, req, "l40s", 1, "fp8")
    per_hour = cat.gpus["l40s"].rent_usd_per_hour
    assert c.rent.total == pytest.approx(per_hour * 12 * 365 * 2)
    monthly_rent = per_hour * 12 * 365 / 12
    monthly_own = (c.economics.energy_per_year + c.economics.hosting_per_year) / 12
    months = c.capex / (monthly_rent - monthly_own)
    assert f"{months:,.1f} months" in c.rent.break_even


def test_only_purchasable_units_are_weighed(cat):
    req = build_request(cat, model="70b", budget=500000, deployment="datacenter")
    counts = {c.count for c in build_candidates(cat, req, [cat.gpus["mi300x"], cat.gpus["h100-sxm"]])}
    assert counts and all(n % 8 == 0 for n in counts)


def test_condition_new_rejects_used_parts(cat, rules):
    from expert.decide.advice import advise

    result = advise(cat, rules, build_request(cat, model="13b", budget=20000, condition="new"))
    assert all(r.candidate.gpu.price_condition not in ("used", "refurbished") for r in result.outcome.ranked)


def test_an_nvl72_rack_is_one_nvlink_domain_not_nine_nodes(cat):
    from expert.estimate import link_for, nodes_spanned

    dc = build_request(cat, model="70b", budget=5_000_000, workload="training", tokens="2T")
    net = cat.platforms["platforms"]["cluster-network-per-node"]["price_usd"]
    rack = cat.gpus["gb200-nvl72"]
    # 72 GPUs share one NVLink switch domain: no cluster network, and all-reduce runs over NVLink.
    assert nodes_spanned(cat, rack, 72) == 1 and link_for(cat, rack, 72).kind == "nvlink"
    assert platform_cost(cat, dc, rack, 72)[0] == 0
    # Two racks need the scale-out fabric, one NIC per GPU: priced per 8 GPUs as for HGX nodes.
    assert nodes_spanned(cat, rack, 144) == 2 and link_for(cat, rack, 144).kind == "network"
    assert platform_cost(cat, dc, rack, 144)[0] == 18 * net
    # An HGX H100 node is 8 GPUs: 16 are two nodes.
    assert nodes_spanned(cat, cat.gpus["h100-sxm"], 16) == 2


def test_a_run_the_budget_cannot_buy_may_be_rented_and_the_decision_says_so():
    from expert import advise

    doc = advise("70b", 3_000_000, workload="training", tokens="2T")
    line = doc["decision"]["buy_or_rent"]
    # A cluster too dear to buy is rented for the one run, within the budget: the decision leads with it.
    assert line.startswith("rent: for this run, renting ") and "within the budget, though buying it" in line
    rented = float(line.split(" costs ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert rented <= 3_000_000 < float(line.split("though buying it (", 1)[1].split(" ", 1)[0].replace(",", ""))


@pytest.mark.parametrize("gpu, count", [("rtx-3090", 2), ("rtx-4090", 2), ("rtx-5090", 1)])
def test_desk_cards_that_outdraw_an_existing_desktops_psu_pay_for_a_power_supply(cat, gpu, count):
    # 2 x RTX 3090 (700 W), 2 x RTX PRO 6000 (1,200 W) ... are more than the ~450 W of GPU an ordinary
    # 750-850 W desktop supply feeds: a new power supply is priced, and the note says why.
    ws = build_request(cat, model="70b", budget=60000, workload="qlora", tokens="200M")
    usd, note, _ = platform_cost(cat, ws, cat.gpus[gpu], count)
    desk = cat.platforms["platforms"]["desktop"]
    assert usd == desk["psu_upgrade_usd"] > 0
    watts = cat.gpus[gpu].board_power_w * count
    assert f"{watts:,.0f} W of GPU board power is more than the 450 W" in note
    assert "existing desktop with a new power supply" in note
    # One 450 W card or less still goes in the desktop the buyer has, at no cost.
    assert platform_cost(cat, ws, cat.gpus["rtx-4090"], 1)[0] == 0


@pytest.mark.parametrize("kw", [
    {"model": "llama-3.1-8b", "budget": 5_000_000, "workload": "training", "tokens": 1e12, "deadline": 60},
    {"model": "70b", "budget": 10_000_000, "workload": "training", "tokens": 2e12, "deadline": 90},
    {"model": "3b", "budget": 60_000, "workload": "training", "tokens": 1e11, "deadline": 30},
])
def test_a_run_is_planned_with_schedule_margin_when_the_budget_allows(cat, rules, kw):
    # The highest certainty the budget allows: when some system of the pick's precision class meets the deadline
    # even at the slow end of the speed range, the pick is one of them (rules/policy.yaml schedule_margin).
    from expert.decide.advice import advise

    o = advise(cat, rules, build_request(cat, **kw)).outcome
    p = o.pick.candidate
    safe = [r for r in o.ranked if r.candidate.quality_class == p.quality_class
            and r.candidate.train_days_slow <= r.candidate.request.deadline_days]
    assert safe, "the case must have a system with margin"
    assert p.train_days_slow <= p.request.deadline_days, (p.label, p.train_days, p.train_days_slow)
    assert p.precision.id == "bf16"


def test_a_default_deadline_buys_no_margin(cat, rules):
    # QLoRA's 3-day deadline is the tool's sizing default: one card that takes 2.4 days (3.5 at the slow end) is
    # what a practitioner buys, not two cards and a new circuit.
    from expert.decide.advice import advise

    o = advise(cat, rules, build_request(cat, model="70b", budget=30_000, workload="qlora")).outcome
    assert o.pick.candidate.gpus == 1, o.pick.candidate.label
    assert "slow end" not in o.tier_note


def test_a_desk_build_beyond_a_new_power_supply_pays_for_a_new_desktop(cat):
    # 2 x RTX PRO 6000 Workstation (1,200 W): its own circuit, a 1,600 W+ supply, two well-spaced x16 slots.
    ws = build_request(cat, model="70b", budget=60000, workload="qlora", tokens="200M")
    usd, note, _ = platform_cost(cat, ws, cat.gpus["rtx-pro-6000"], 2)
    assert usd == cat.platforms["platforms"]["desktop"]["price_usd"]
    assert "1,200 W of GPU board power needs its own circuit" in note
