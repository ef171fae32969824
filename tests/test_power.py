"""Power at the wall: the GPUs at their workload's load fraction plus the host they are built into
(facts/platforms.yaml host_power_w x facts/efficiency.yaml host_power_fraction), checked against the
measurements and ratings the facts cite."""

from __future__ import annotations

import pytest

from expert.candidates import build_candidates
from expert.estimate import Config, estimate, plan_training
from expert.estimate.host import host_platform
from expert.request import build_request


def _cfg(cat, model, gpu, count, precision, workload="inference", deployment="datacenter", **kw):
    pue = cat.energy.pue[deployment]
    return Config(model=cat.models[model], gpu=cat.gpus[gpu], count=count, precision=cat.precisions[precision],
                  workload=workload, pue=pue, deployment=deployment, **kw)


def _const(cat, name):
    return cat.efficiency["constants"][name]["value"]


def test_8x_h100_training_draws_what_latif_measured(cat):
    # Latif et al. 2024 measured ~8.4 kW for an 8 x H100 node in training (10.2 kW rated); GPU board power
    # alone (4,760 W at the 0.85 training fraction) was ~40 % low.
    e = estimate(cat, _cfg(cat, "llama-3.1-8b", "h100-sxm", 8, "bf16", workload="finetune"))
    p = e.power
    assert p["gpu_watts"] == pytest.approx(8 * 700 * _const(cat, "training_power_fraction"))
    host = cat.platforms["platforms"]["baseboard-server"]["host_power_w"]
    assert p["board_power_w"] + host == pytest.approx(10200)  # DGX H100 system power, max
    assert p["host_watts"] == pytest.approx(host * _const(cat, "host_power_fraction"))
    assert p["watts"] == pytest.approx(8400, rel=0.02)
    assert any("host" in a and "board power" in a for a in e.assumptions if a.startswith("power:"))


def test_an_nvl72_rack_counts_its_non_gpu_power(cat):
    # A GB200 NVL72 rack is ~120 kW; its 72 GPUs are 86.4 kW of board power.
    e = estimate(cat, _cfg(cat, "llama-3.1-70b", "gb200-nvl72", 72, "fp8"))
    p = e.power
    assert p["board_power_w"] == pytest.approx(86400)
    assert p["board_power_w"] + p["host_power_w"] == pytest.approx(120000)
    assert p["watts"] == pytest.approx(p["gpu_watts"] + p["host_watts"])
    assert host_platform(cat, cat.gpus["gb200-nvl72"], 144, "datacenter") == ("nvl72-rack", 2)


def test_the_host_follows_the_deployment_and_the_part(cat):
    g = cat.gpus
    assert host_platform(cat, g["rtx-4090"], 2, "workstation") == ("desktop", 1)
    assert host_platform(cat, g["rtx-a6000"], 4, "workstation") == ("hedt", 1)
    assert host_platform(cat, g["l40s"], 1, "datacenter") == ("pcie-server-2", 1)
    assert host_platform(cat, g["l40s"], 16, "datacenter") == ("pcie-server", 2)
    assert host_platform(cat, g["mi300x"], 16, "datacenter") == ("baseboard-server", 2)
    # A whole machine's board power is the machine's: no host to add.
    assert host_platform(cat, g["m2-ultra-192gb"], 1, "workstation") == (None, 0)
    e = estimate(cat, _cfg(cat, "llama-3.1-8b", "m2-ultra-192gb", 1, "q4_k_m", deployment="workstation"))
    assert e.power["host_watts"] == 0 and e.power["watts"] == pytest.approx(e.power["gpu_watts"])


def test_a_desk_card_pays_for_its_desktops_power(cat):
    e = estimate(cat, _cfg(cat, "llama-3.1-8b", "rtx-4090", 1, "q4_k_m", deployment="workstation"))
    host = cat.platforms["platforms"]["desktop"]["host_power_w"] * _const(cat, "host_power_fraction")
    assert e.power["host_watts"] == pytest.approx(host)
    assert e.power["energy_cost_per_hour"] == pytest.approx(
        (e.power["gpu_watts"] + host) / 1000 * e.config.pue * e.config.electricity_per_kwh)


def test_a_training_runs_energy_counts_the_host(cat):
    req = build_request(cat, model="llama-3.1-70b", budget=400000, workload="finetune", tokens="2B", deadline=7)
    c = next(c for c in build_candidates(cat, req, [cat.gpus["h100-sxm"]]) if c.count == 8)
    plan = plan_training(cat, c.estimate.config, tokens=2e9)
    hours = plan.days * 24
    kwh = c.estimate.power["watts"] / 1000 * hours * c.estimate.config.pue
    assert plan.cost["energy_kwh"] == pytest.approx(kwh, rel=1e-6)
    # Hosting is charged on the provisioned IT load: GPU board power plus the host's rating.
    kw = (c.estimate.power["board_power_w"] + c.estimate.power["host_power_w"]) / 1000
    colo = cat.platforms["hosting"]["colocation_usd_per_kw_month"]["value"]
    assert c.economics.hosting_per_year == pytest.approx(kw * 12 * colo)


def test_every_host_kind_states_its_power_and_basis(cat):
    for kind, entry in cat.platforms["platforms"].items():
        if kind == "cluster-network-per-node":
            continue
        assert entry["host_power_w"] > 0, kind
        assert entry["host_power_basis"].split(":")[0] in ("documented", "assumption", "measured"), kind
