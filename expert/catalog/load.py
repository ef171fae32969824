"""The fact catalogs (facts/*.yaml): loaded once, validated, every number traceable to a source."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from ..core.errors import FactError, located
from ..core.paths import data_dir
from ..core.schema import Field, numeric_paths, opt, validate
from ..core.yamlio import load_yaml_bytes, plain, read_data_file
from .model import QUALITY_LEVELS, VERIFICATION, Catalog, Energy, Gpu, Model, Precision, Source, count_params


# Open vocabularies (a new vendor or architecture is a data change, not a code change): lower-case slugs.
def _slug(v: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", v) else f"{v!r} is not a lower-case slug"

PRECISION_DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8")
MEMORY_TYPES = ("gddr5", "gddr6", "gddr6x", "gddr7", "hbm2", "hbm2e", "hbm3", "hbm3e", "lpddr5", "lpddr5x")
# GPU-to-GPU fabrics; pcie covers P2P and host-bounce (costed from pcie_gen x lanes), none a single-GPU system.
LINK_KINDS = ("none", "pcie", "nvlink", "nvlink-c2c", "infinity-fabric", "roce", "hccs")
AVAILABILITY = ("on-sale", "used-only", "discontinued")
SOLD_IN = ("card", "system", "baseboard", "rack", "module")
REGIONS = ("global", "us", "eu", "china")

_SOURCE_SPEC = {
    "title": Field("str"),
    "url": Field("str", nullable=True),
    "repo": opt("str", nullable=True),
    "path": opt("str", nullable=True),
    "commit": opt("str", nullable=True),
    "date": Field("any", nullable=True),
    "verification": Field("str", choices=VERIFICATION),
    "note": opt("str", nullable=True),
    "index_file_id": opt("any", nullable=True),
}

_SOURCES_MAP = Field("map", values=Field("list", item=Field("str")))
_NOTES = opt("list", item=Field("str"))

_TFLOPS = {k: Field("num", nullable=True, min=0.1, max=50000) for k in ("fp16", "bf16", "fp8", "int8", "fp32")}

GPU_SPEC: dict[str, Field] = {
    "id": Field("str"),
    "name": Field("str"),
    "vendor": Field("str", check=_slug),
    "segment": Field("str", choices=("consumer", "workstation", "datacenter", "apple")),
    "architecture": Field("str", check=_slug),
    "compute_capability": Field("str", nullable=True),
    "memory_gib": Field("num", min=1, max=4096),
    "usable_memory_gib": Field("num", nullable=True, min=1, max=4096),
    "memory_bandwidth_gbs": Field("num", min=50, max=50000),
    "tflops": Field("map", spec=_TFLOPS),
    "board_power_w": Field("num", min=10, max=5000),
    "interconnect": Field("map", spec={
        "nvlink": Field("bool"),
        "nvlink_gbs": Field("num", min=0, max=10000),
        "nvlink_max_gpus": Field("int", min=0, max=576),
        "pcie_gen": Field("int", nullable=True, min=0, max=6),
        "pcie_lanes": Field("int", nullable=True, min=0, max=16),
        "p2p": Field("bool"),
        "link": Field("map", spec={
            "kind": Field("str", choices=LINK_KINDS),
            "gbs": Field("num", min=0, max=20000),  # bidirectional per GPU; 0 for pcie/none
            "max_gpus": Field("int", min=0, max=576),
        }),
    }),
    "physical": Field("map", spec={
        "form_factor": Field("str", choices=("pcie", "sxm", "oam", "system")),
        "slots": Field("int", min=0, max=5),
        "cooling": Field("str", choices=("open-air", "blower", "passive", "module", "liquid", "system")),
    }),
    "counts": Field("list", item=Field("int", min=1, max=576)),
    "memory_type": Field("str", choices=MEMORY_TYPES + ("unified-lpddr5", "unified-lpddr5x")),
    "availability": Field("map", spec={
        "status": Field("str", choices=AVAILABILITY),
        "date": Field("any"),  # when the status was checked (or the part was withdrawn)
    }),
    "sold_in": Field("map", spec={
        "unit": Field("str", choices=SOLD_IN),
        "gpus": Field("int", min=1, max=576),  # GPUs in the smallest unit a buyer can order
    }),
    "ecc": Field("bool"),
    "launch_date": Field("str"),
    "features": Field("map", spec={
        "bf16": Field("bool"),
        "fp8": Field("bool"),
        "flash_attention": Field("int", choices=(0, 2, 3)),
        "datacenter_licence": Field("bool"),
    }),
    "software": Field("map", spec={
        "stack": Field("str", check=_slug),  # cuda | rocm | metal | ...
        "vllm": Field("bool"),
        "tensorrt_llm": Field("bool"),
        "llama_cpp": Field("bool"),
    }),
    "export_restricted": Field("list", item=Field("str", choices=REGIONS)),
    "china_only": opt("bool"),  # sold only through Chinese channels (export-compliant parts)
    "price": Field("map", spec={
        "usd": Field("num", min=50, max=10_000_000),
        "cny": Field("num", nullable=True, min=300, max=100_000_000),
        "date": Field("any"),
        "condition": Field("str", choices=("new", "used", "system-share")),
    }),
    "rent_usd_per_hour": Field("num", nullable=True, min=0.01, max=1000),
    "notes": _NOTES,
    "sources": _SOURCES_MAP,
}

MODEL_SPEC: dict[str, Field] = {
    "id": Field("str"),
    "name": Field("str"),
    "family": Field("str"),
    "hf_repo": Field("str", nullable=True),
    "release_date": Field("any"),
    "licence": Field("str"),
    "layers": Field("int", min=1, max=1000),
    "hidden_size": Field("int", min=64, max=100_000),
    "attention_heads": Field("int", min=1, max=1024),
    "kv_heads": Field("int", min=1, max=1024),
    "head_dim": Field("int", min=8, max=1024),
    "intermediate_size": Field("int", min=64, max=1_000_000),
    "vocab_size": Field("int", min=100, max=2_000_000),
    "tied_embeddings": Field("bool"),
    "attention_bias": Field("bool"),
    "max_context": Field("int", min=128, max=10_000_000),
    "experts": Field("int", min=0, max=1024),
    "active_experts": Field("int", min=0, max=1024),
    "params": Field("int", min=1_000_000, max=10**13),
    "shared_experts": opt("int", min=0, max=64),
    "expert_intermediate_size": opt("int", min=16, max=1_000_000),
    "shared_expert_intermediate_size": opt("int", min=16, max=1_000_000),
    "moe_layers": opt("int", min=0, max=1000),
    "qk_norm": opt("bool"),
    "norms_per_layer": opt("int", min=1, max=8),
    "local_attention": opt("map", nullable=True, spec={
        "kind": Field("str", choices=("sliding", "chunked")),
        "window": Field("int", min=16, max=10_000_000),
        "layers": Field("int", min=1, max=1000),
    }),
    "vision_params": opt("int", min=0, max=10**11),
    "released_precision": opt("str"),
    "notes": _NOTES,
    "sources": _SOURCES_MAP,
}

PRECISION_SPEC: dict[str, Field] = {
    "id": Field("str"),
    "name": Field("str"),
    "kind": Field("str", choices=("float", "integer", "weight-only", "gguf")),
    "bits_per_weight": Field("num", min=1, max=32),
    "embedding_bits": opt("num", min=1, max=32),
    "compute": Field("str", choices=PRECISION_DTYPES),
    "requires": Field("list", item=Field("str", choices=("bf16", "fp8"))),
    "engines": Field("list", item=Field("str", choices=("llama.cpp", "vllm", "tensorrt-llm", "transformers",
                                                         "mlx"))),
    "trainable": Field("bool"),
    "quality": Field("str", choices=QUALITY_LEVELS),
    "quality_text": Field("str"),
    "aliases": opt("list", item=Field("str")),
    "notes": _NOTES,
    "sources": _SOURCES_MAP,
}

_REGION_SPEC = {
    "name": Field("str"),
    "currency": Field("str"),
    "electricity_per_kwh": Field("num", min=0.001, max=100),
    "date": Field("any"),
    "sources": Field("list", item=Field("str")),
}
_PUE_SPEC = {"value": Field("num", min=1.0, max=3.0), "sources": Field("list", item=Field("str"))}
_CURRENCY_SPEC = {
    "per_usd": Field("num", min=0.0001, max=100000),
    "date": Field("any"),
    "sources": Field("list", item=Field("str")),
}


def _entries(doc: Any, key: str, file: str) -> list[Any]:
    if not isinstance(doc, dict) or key not in doc:
        raise FactError(located(file, 1, "", f"expected a top-level '{key}:' list"))
    items = doc[key]
    if not isinstance(items, list) or not items:
        raise FactError(located(file, getattr(items, "line", 1), "", f"'{key}' must be a non-empty list"))
    return items


def _load_sources(doc: Any, file: str, into: dict[str, Source], raw_into: dict[str, dict]) -> None:
    sources = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(sources, dict):
        raise FactError(located(file, 1, "", "expected a top-level 'sources:' mapping"))
    for sid, entry in sources.items():
        validate(entry, _SOURCE_SPEC, file=file, entry=f"source {sid}", error=FactError)
        p = plain(entry)
        # One id, one document: the locator must agree across files (the prose notes may differ).
        locator = {k: p.get(k) for k in ("url", "repo", "path", "commit")}
        if sid in raw_into and raw_into[sid] != locator:
            raise FactError(located(file, sources.line_of(sid), f"source {sid}",
                                    "points at a different document than in another catalog file"))
        raw_into.setdefault(sid, locator)
        if sid in into:
            continue
        into[sid] = Source(
            id=sid, title=p["title"], url=p.get("url"), date=None if p.get("date") is None else str(p["date"]),
            verification=p["verification"], repo=p.get("repo"), path=p.get("path"), commit=p.get("commit"),
        )


def _check_sourced(entry: dict, file: str, eid: str, groups: tuple[str, ...]) -> tuple[str, ...]:
    """Every numeric fact needs a source: its own key in `sources:` or its group's key."""
    src = entry.get("sources") or {}
    for path in numeric_paths(entry):
        head = path.split(".")[0]
        if path in src or head in src or (head in groups and "architecture" in src):
            continue
        raise FactError(located(file, entry.line_of(head), eid, f"{path}: numeric fact without a source "
                                f"(add sources.{head})"))
    ids: list[str] = []
    for lst in src.values():
        ids.extend(lst)
    return tuple(dict.fromkeys(ids))


_MODEL_ARCH_FIELDS = ("layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "intermediate_size",
                      "vocab_size", "max_context", "experts", "active_experts", "params", "shared_experts",
                      "expert_intermediate_size", "shared_expert_intermediate_size", "moe_layers",
                      "norms_per_layer", "local_attention", "vision_params")


def _load_gpus(doc: Any, file: str) -> dict[str, Gpu]:
    out: dict[str, Gpu] = {}
    for e in _entries(doc, "gpus", file):
        eid = f"gpu {e.get('id', '?')}" if isinstance(e, dict) else "gpu"
        validate(e, GPU_SPEC, file=file, entry=eid, error=FactError)
        if e["id"] in out:
            raise FactError(located(file, e.line, eid, "duplicate id"))
        srcs = _check_sourced(e, file, eid, ())
        if e["features"]["fp8"] != (e["tflops"]["fp8"] is not None):
            raise FactError(located(file, e.line_of("features"), eid,
                                    "features.fp8 must agree with tflops.fp8 (null when unsupported)"))
        lk = e["interconnect"]["link"]
        if e["interconnect"]["nvlink"] != (lk["kind"] == "nvlink") or (
                lk["kind"] == "nvlink" and lk["gbs"] != e["interconnect"]["nvlink_gbs"]):
            raise FactError(located(file, e["interconnect"].line_of("link"), eid,
                                    "interconnect.link must be nvlink, at nvlink_gbs, exactly when nvlink is true"))
        if lk["kind"] not in ("pcie", "none") and (lk["gbs"] <= 0 or lk["max_gpus"] < 2):
            raise FactError(located(file, e["interconnect"].line_of("link"), eid,
                                    f"interconnect.link: a {lk['kind']} fabric needs gbs > 0 and max_gpus >= 2"))
        t, ic, ph, ft, sw, pr = (e["tflops"], e["interconnect"], e["physical"], e["features"], e["software"],
                                 e["price"])
        out[e["id"]] = Gpu(
            id=e["id"], name=e["name"], vendor=e["vendor"], segment=e["segment"], architecture=e["architecture"],
            compute_capability=e["compute_capability"], memory_gib=float(e["memory_gib"]),
            usable_memory_gib=float(e["usable_memory_gib"] or e["memory_gib"]),
            bandwidth_gbs=float(e["memory_bandwidth_gbs"]),
            tflops_fp16=t["fp16"], tflops_bf16=t["bf16"], tflops_fp8=t["fp8"], tops_int8=t["int8"],
            tflops_fp32=t["fp32"], board_power_w=float(e["board_power_w"]),
            nvlink=ic["nvlink"], nvlink_gbs=float(ic["nvlink_gbs"]), nvlink_max_gpus=ic["nvlink_max_gpus"],
            link_kind=lk["kind"], link_gbs=float(lk["gbs"]), link_max_gpus=lk["max_gpus"],
            pcie_gen=ic["pcie_gen"], pcie_lanes=ic["pcie_lanes"], p2p=ic["p2p"],
            form_factor=ph["form_factor"], slots=ph["slots"], cooling=ph["cooling"],
            counts=tuple(sorted(set(e["counts"]))), memory_type=e["memory_type"],
            availability=e["availability"]["status"], availability_date=str(e["availability"]["date"]),
            sold_in=e["sold_in"]["unit"], gpus_per_unit=e["sold_in"]["gpus"], ecc=e["ecc"],
            launch_date=str(e["launch_date"]),
            bf16=ft["bf16"], fp8=ft["fp8"], flash_attention=ft["flash_attention"],
            datacenter_licence=ft["datacenter_licence"], stack=sw["stack"], vllm=sw["vllm"],
            tensorrt_llm=sw["tensorrt_llm"], llama_cpp=sw["llama_cpp"],
            export_restricted=tuple(e["export_restricted"]), china_only=bool(e.get("china_only", False)),
            price_usd=float(pr["usd"]),
            price_cny=None if pr["cny"] is None else float(pr["cny"]), price_date=str(pr["date"]),
            price_condition=pr["condition"], rent_usd_per_hour=e["rent_usd_per_hour"], sources=srcs,
            raw=plain(e),
        )
    return out


def _load_models(doc: Any, file: str) -> tuple[dict[str, Model], dict[str, str]]:
    out: dict[str, Model] = {}
    for e in _entries(doc, "models", file):
        eid = f"model {e.get('id', '?')}" if isinstance(e, dict) else "model"
        validate(e, MODEL_SPEC, file=file, entry=eid, error=FactError)
        if e["id"] in out:
            raise FactError(located(file, e.line, eid, "duplicate id"))
        srcs = _check_sourced(e, file, eid, _MODEL_ARCH_FIELDS)
        computed = count_params(e)
        if abs(computed - e["params"]) > 0.005 * e["params"]:
            raise FactError(located(file, e.line_of("params"), eid,
                                    f"params: {e['params']:,} disagrees with the architecture ({computed:,})"))
        if e["kv_heads"] > e["attention_heads"] or e["attention_heads"] % e["kv_heads"]:
            raise FactError(located(file, e.line_of("kv_heads"), eid,
                                    "kv_heads must divide attention_heads"))
        la = e.get("local_attention")
        if la and la["layers"] > e["layers"]:
            raise FactError(located(file, e.line_of("local_attention"), eid,
                                    "local_attention.layers is more than the model's layers"))
        if e["experts"] and not 0 < e["active_experts"] <= e["experts"]:
            raise FactError(located(file, e.line_of("active_experts"), eid,
                                    "active_experts must be between 1 and experts"))
        out[e["id"]] = Model(
            id=e["id"], name=e["name"], family=e["family"], hf_repo=e["hf_repo"], licence=e["licence"],
            layers=e["layers"], hidden_size=e["hidden_size"], attention_heads=e["attention_heads"],
            kv_heads=e["kv_heads"], head_dim=e["head_dim"], intermediate_size=e["intermediate_size"],
            vocab_size=e["vocab_size"], tied_embeddings=e["tied_embeddings"], attention_bias=e["attention_bias"],
            max_context=e["max_context"], experts=e["experts"], active_experts=e["active_experts"],
            params=e["params"], sources=srcs, shared_experts=e.get("shared_experts", 0),
            expert_intermediate_size=e.get("expert_intermediate_size", 0),
            shared_expert_intermediate_size=e.get("shared_expert_intermediate_size", 0),
            moe_layers=e.get("moe_layers", 0), qk_norm=e.get("qk_norm", False),
            norms_per_layer=e.get("norms_per_layer", 2),
            local_attention=la["kind"] if la else None, local_window=la["window"] if la else 0,
            local_layers=la["layers"] if la else 0, vision_params=e.get("vision_params", 0),
            released_precision=e.get("released_precision", "bf16"),
        )
    shorthands = doc.get("shorthands") or {}
    for short, target in shorthands.items():
        if target not in out:
            raise FactError(located(file, shorthands.line_of(short), f"shorthand {short}",
                                    f"points at unknown model {target!r}"))
    return out, {str(k).lower(): v for k, v in shorthands.items()}


def _load_precisions(doc: Any, file: str) -> dict[str, Precision]:
    out: dict[str, Precision] = {}
    for e in _entries(doc, "precisions", file):
        eid = f"precision {e.get('id', '?')}" if isinstance(e, dict) else "precision"
        validate(e, PRECISION_SPEC, file=file, entry=eid, error=FactError)
        if e["id"] in out:  # a second entry must not silently replace the first
            raise FactError(located(file, e.line, eid, "duplicate id"))
        srcs = _check_sourced(e, file, eid, ())
        bits = float(e["bits_per_weight"])
        out[e["id"]] = Precision(
            id=e["id"], name=e["name"], kind=e["kind"], bits_per_weight=bits,
            embedding_bits=float(e.get("embedding_bits", bits)), compute=e["compute"],
            requires=tuple(e["requires"]), engines=tuple(e["engines"]), trainable=e["trainable"],
            quality=e["quality"], quality_text=e["quality_text"], sources=srcs,
            aliases=tuple(str(a).lower() for a in e.get("aliases", ())),
        )
        if e["id"] != e["id"].lower():
            raise FactError(located(file, e.line_of("id"), eid, "precision ids are lower case (names match "
                                    "case-insensitively)"))
    return out


def _check_aliases(precisions: dict[str, Precision], file: str) -> None:
    seen: dict[str, str] = {}
    for p in precisions.values():
        for name in (p.id, *p.aliases):
            if seen.get(name, p.id) != p.id:
                raise FactError(located(file, 0, f"precision {p.id}", f"alias {name!r} also names {seen[name]}"))
            seen[name] = p.id


def _load_energy(doc: Any, file: str) -> Energy:
    for key in ("regions", "pue", "currencies"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
            raise FactError(located(file, 1, "", f"expected a top-level '{key}:' mapping"))
    regions, pue, currencies, dates, srcs = {}, {}, {}, {}, {}
    for rid, r in doc["regions"].items():
        validate(r, _REGION_SPEC, file=file, entry=f"region {rid}", error=FactError)
        regions[rid] = plain(r)
        srcs[f"region:{rid}"] = tuple(r["sources"])
    for kind, p in doc["pue"].items():
        validate(p, _PUE_SPEC, file=file, entry=f"pue {kind}", error=FactError)
        pue[kind] = float(p["value"])
        srcs[f"pue:{kind}"] = tuple(p["sources"])
    for cur, c in doc["currencies"].items():
        validate(c, _CURRENCY_SPEC, file=file, entry=f"currency {cur}", error=FactError)
        currencies[cur] = float(c["per_usd"])
        dates[cur] = str(c["date"])
        srcs[f"currency:{cur}"] = tuple(c["sources"])
    for rid, r in regions.items():
        if r["currency"] not in currencies:
            raise FactError(located(file, doc["regions"][rid].line, f"region {rid}",
                                    f"currency {r['currency']!r} is not in currencies"))
    for need in ("workstation", "datacenter"):
        if need not in pue:
            raise FactError(located(file, doc["pue"].line, "pue", f"missing '{need}'"))
    return Energy(regions, pue, currencies, dates, srcs)


# sources.yaml holds only a `sources:` registry: the documents rules cite that no other facts file does.
CATALOG_FILES = ("gpus.yaml", "models.yaml", "precisions.yaml", "energy.yaml", "efficiency.yaml", "sources.yaml",
                 "platforms.yaml")


def load_catalog(root: Path | None = None) -> Catalog:
    """Load and validate every catalog under `root` (default: the installed facts/ directory)."""
    base = root if root is not None else data_dir("facts")
    sources: dict[str, Source] = {}
    raw_sources: dict[str, dict] = {}
    docs: dict[str, Any] = {}
    digest = hashlib.sha256()
    if not base.is_dir():
        raise FactError(f"{base}: facts directory not found")
    for name in CATALOG_FILES:
        path = base / name
        display = f"facts/{name}"
        if not path.exists() and not path.is_symlink():
            raise FactError(f"{display}: missing fact catalog")
        data = read_data_file(path, display)  # one bounded read: a FIFO or /dev/zero must not hang us
        digest.update(data)
        doc = load_yaml_bytes(data, display)
        _load_sources(doc, display, sources, raw_sources)
        docs[name] = doc
    gpus = _load_gpus(docs["gpus.yaml"], "facts/gpus.yaml")
    models, shorthands = _load_models(docs["models.yaml"], "facts/models.yaml")
    precisions = _load_precisions(docs["precisions.yaml"], "facts/precisions.yaml")
    for m in models.values():
        if m.released_precision not in precisions:
            raise FactError(f"facts/models.yaml: model {m.id}: released_precision {m.released_precision!r} is not a "
                            f"precision in facts/precisions.yaml")
    _check_aliases(precisions, "facts/precisions.yaml")
    energy = _load_energy(docs["energy.yaml"], "facts/energy.yaml")
    from .efficiency import load_efficiency  # the calibration table has its own schema

    efficiency = load_efficiency(docs["efficiency.yaml"], "facts/efficiency.yaml")
    from .platforms import load_platforms

    platforms = load_platforms(docs["platforms.yaml"], "facts/platforms.yaml")
    cited: list[tuple[str, str, str]] = []
    cited += [("facts/platforms.yaml", key, s) for key, lst in platforms["_sources"].items() for s in lst]
    for g in gpus.values():
        cited += [("facts/gpus.yaml", f"gpu {g.id}", s) for s in g.sources]
    for m in models.values():
        cited += [("facts/models.yaml", f"model {m.id}", s) for s in m.sources]
    for p in precisions.values():
        cited += [("facts/precisions.yaml", f"precision {p.id}", s) for s in p.sources]
    for key, lst in energy.sources.items():
        cited += [("facts/energy.yaml", key, s) for s in lst]
    for key, lst in efficiency["_sources"].items():
        cited += [("facts/efficiency.yaml", key, s) for s in lst]
    for file, entry, sid in cited:
        if sid not in sources:
            raise FactError(located(file, 0, entry, f"cites unknown source {sid!r}"))
    return Catalog(gpus, models, shorthands, precisions, energy, efficiency, sources, digest.hexdigest()[:16],
                   platforms)
