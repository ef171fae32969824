"""The decision policy (rules/policy.yaml): default requirements, deployment inference, precision tiers,
serving and desk-side limits, cluster sizes, allowed software stacks.

Data, not code: a change is a reviewable diff that `expert audit` replays over the corpus. Every
number states its basis; bracketed ids in a basis name documents of the facts/ source registry
(checked against the registry when the catalog is loaded, see store.load_all)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from .errors import RuleError
from .paths import data_dir
from .schema import Field, basis_field, validate
from .workloads import WORKLOADS
from .yamlio import load_yaml_bytes, plain, read_data_file

POLICY_FILE = "policy.yaml"
_BASIS = basis_field()
_VALUE = {"value": Field("num", min=0), "basis": _BASIS}
_SERVING_REQ = {"users": Field("int", min=1, max=100000), "prompt_tokens": Field("int", min=1, max=10_000_000),
                "output_tokens": Field("int", min=1, max=10_000_000), "min_tokens_per_s": Field("num", min=0.1),
                "ttft_s": Field("num", min=0.01),
                # KV-cache length per sequence when longer than one prompt and answer (a chat keeps history)
                "context_tokens": Field("int", min=1, max=10_000_000, required=False)}
_TRAIN_REQ = {"tokens": Field("num", min=1), "deadline_days": Field("num", min=0.01)}
_WORKLOAD_IDS = tuple(WORKLOADS)


def _requirement_spec(workload: str) -> dict[str, Field]:
    req = _TRAIN_REQ if WORKLOADS[workload].trains else _SERVING_REQ
    return {"workstation": Field("map", spec=req), "datacenter": Field("map", spec=req), "basis": _BASIS}


SPEC: dict[str, Field] = {
    "deployment": Field("map", spec={"workstation_workloads": Field("list", item=Field("str", choices=_WORKLOAD_IDS)),
                                     "workstation_workloads_below_usd": Field("map", spec=_VALUE),
                                     "workstation_below_usd": Field("map", spec=_VALUE)}),
    "requirements": Field("map", spec={w: Field("map", spec=_requirement_spec(w)) for w in WORKLOADS}),
    "auto_precisions": Field("map", spec={w: Field("list", item=Field("str")) for w in WORKLOADS}),
    "quality_tiers": Field("list", item=Field("map", spec={"name": Field("str"), "min_bits": Field("num", min=0)})),
    "quality_tiers_basis": _BASIS,
    "schedule_margin": Field("map", spec={"prefer_low_end": Field("bool"), "basis": _BASIS}),
    "quality_classes": Field("map", values=Field("int", min=0, max=10)),
    "quality_classes_dev": Field("map", values=Field("int", min=0, max=10)),
    "serving": Field("map", spec={"max_replicas": Field("map", spec=_VALUE)}),
    "desk_side": Field("map", spec={"max_consumer_cards": Field("map", spec=_VALUE),
                                    "existing_host_max_cards": Field("map", spec=_VALUE),
                                    "existing_host_max_gpu_w": Field("map", spec=_VALUE),
                                    "existing_host_max_psu_gpu_w": Field("map", spec=_VALUE)}),
    "clusters": Field("map", spec={"counts": Field("list", item=Field("int", min=2)),
                                   "max_budget_multiple": Field("num", min=1), "basis": _BASIS}),
    "stacks": Field("map", spec={**{w: Field("list", item=Field("str")) for w in WORKLOADS}, "basis": _BASIS}),
}


@dataclass(frozen=True)
class Tier:
    name: str
    min_bits: float


@dataclass(frozen=True)
class Policy:
    raw: dict[str, Any]
    digest: str
    file: str

    def requirement(self, workload: str, deployment: str) -> dict[str, Any]:
        return dict(self.raw["requirements"][workload][deployment])

    def requirement_basis(self, workload: str) -> str:
        return self.raw["requirements"][workload]["basis"]

    def _value(self, section: str, key: str) -> float:
        """A `{value, basis}` entry of one policy section."""
        return self.raw[section][key]["value"]

    @property
    def workstation_workloads(self) -> tuple[str, ...]:
        return tuple(self.raw["deployment"]["workstation_workloads"])

    @property
    def workstation_workloads_below_usd(self) -> float:
        return float(self._value("deployment", "workstation_workloads_below_usd"))

    @property
    def workstation_below_usd(self) -> float:
        return float(self._value("deployment", "workstation_below_usd"))

    def auto_precisions(self, workload: str) -> tuple[str, ...]:
        return tuple(self.raw["auto_precisions"][workload])

    @property
    def prefer_schedule_margin(self) -> bool:
        """Training: rank the systems that meet the deadline even at the low end of the speed range first."""
        return bool(self.raw["schedule_margin"]["prefer_low_end"])

    @cached_property  # read per candidate (its quality tier); the policy is never changed once loaded
    def tiers(self) -> tuple[Tier, ...]:
        return tuple(Tier(t["name"], float(t["min_bits"])) for t in self.raw["quality_tiers"])

    def tier_of(self, bits: float) -> int:
        """Index of the quality tier of a weight format (0 = the best)."""
        for i, t in enumerate(self.tiers):
            if bits >= t.min_bits:
                return i
        return len(self.tiers) - 1

    def quality_class(self, quality: str, workload: str = "inference") -> int:
        """Rank of a precision's quality loss for the pick (equal classes are equally good)."""
        # A development box and a full-weight training run keep the reference numerics (bf16) before the
        # near-lossless formats; serving counts them as one class.
        table = self.raw["quality_classes_dev" if workload in ("dev", "finetune", "training") else "quality_classes"]
        return int(table.get(quality, len(table)))

    @property
    def max_replicas(self) -> int:
        return int(self._value("serving", "max_replicas"))

    @property
    def existing_host_max_cards(self) -> int:
        return int(self._value("desk_side", "existing_host_max_cards"))

    @property
    def existing_host_max_gpu_w(self) -> float:
        """GPU board power an existing desktop's power supply feeds; more needs a new (priced) desktop host."""
        return float(self._value("desk_side", "existing_host_max_gpu_w"))

    @property
    def existing_host_max_psu_gpu_w(self) -> float:
        """GPU board power a new power supply in an existing desktop feeds; more needs a new desktop host."""
        return float(self._value("desk_side", "existing_host_max_psu_gpu_w"))

    @property
    def max_consumer_cards(self) -> int:
        return int(self._value("desk_side", "max_consumer_cards"))

    @property
    def cluster_counts(self) -> tuple[int, ...]:
        return tuple(self.raw["clusters"]["counts"])

    @property
    def cluster_budget_multiple(self) -> float:
        return float(self.raw["clusters"]["max_budget_multiple"])

    def stacks(self, workload: str) -> tuple[str, ...]:
        return tuple(self.raw["stacks"][workload])

    def cited_sources(self) -> list[str]:
        """Every [SOURCE_ID] named in a basis, to check against the facts/ registry."""
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
            elif isinstance(v, str):
                out.extend(re.findall(r"\[([A-Z0-9_]+)\]", v))

        walk(self.raw)
        return list(dict.fromkeys(out))


def parse_policy(doc: Any, file: str) -> Policy:
    validate(doc, {"policy": Field("map", spec=SPEC)}, file=file, entry="policy", error=RuleError)
    raw = plain(doc["policy"])
    for w, lst in raw["auto_precisions"].items():
        if not lst:
            raise RuleError(f"{file}: policy: auto_precisions.{w}: needs at least one precision")
    if not raw["quality_tiers"] or raw["quality_tiers"][-1]["min_bits"] != 0:
        raise RuleError(f"{file}: policy: quality_tiers: the last tier must have min_bits 0 (every format has a tier)")
    return Policy(raw, "", file)


# The code that parses and validates the policy: a change to any of it invalidates the cached parse.
_CODE = ("policy.py", "schema.py", "yamlio.py", "workloads.py", "cachedir.py")


def _cache_key(data: bytes) -> str | None:
    h = hashlib.sha256(b"policy\0")
    here = Path(__file__).resolve().parent
    try:
        for name in _CODE:
            h.update((here / name).read_bytes() + b"\0")
    except OSError:
        return None
    return h.hexdigest() + "-" + hashlib.sha256(data).hexdigest()


def _cached_raw(key: str) -> dict[str, Any] | None:
    """The validated policy of a file with these bytes, as a previous process stored it (core/cachedir.py
    checks the directory and the entry); None to parse and validate it here."""
    from .cachedir import cache_subdir, read_entry

    base = cache_subdir("data")
    payload = None if base is None else read_entry(base, f"policy-{key}.json")
    if payload is None:
        return None
    import json

    try:
        raw = json.loads(payload)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


def _store_raw(key: str, raw: dict[str, Any]) -> None:
    import json

    from .cachedir import cache_subdir, write_entry

    payload = json.dumps(raw)
    if json.loads(payload) != raw:  # only what JSON gives back unchanged (str keys, no NaN) is cached
        return
    base = cache_subdir("data")
    if base is not None:
        write_entry(base, f"policy-{key}.json", payload.encode())


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> Policy:  # mtime and size: a changed file reloads
    name = f"rules/{POLICY_FILE}"
    data = read_data_file(Path(path), name)
    digest = hashlib.sha256(data).hexdigest()[:16]
    key = _cache_key(data)
    raw = _cached_raw(key) if key else None
    if raw is None:
        raw = parse_policy(load_yaml_bytes(data, name), name).raw
        if key:
            _store_raw(key, raw)
    return Policy(raw, digest, name)


def load_policy(rules_dir: Path | None = None) -> Policy:
    """The policy beside the rules (rules/policy.yaml, or $GPU_EXPERT_RULES/policy.yaml)."""
    path = (rules_dir or data_dir("rules")) / POLICY_FILE
    try:
        st = path.stat()
    except OSError:
        raise RuleError(f"{path}: missing decision policy file (rules/{POLICY_FILE})") from None
    return _load(str(path), st.st_mtime_ns, st.st_size)
