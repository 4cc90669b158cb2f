"""Split a matrix's cases into N shards of about equal expected cost, keyed by case id.

``--shard K/N`` used to take every N-th case by position: ResNet-152 cases cost ~10x
ResNet-18 ones, so shards came out unbalanced, and a line added to the matrix moved every
case after it to another shard. Here, as pytest-split does with its stored durations,
each case gets an expected cost and the cases are dealt greedily, most expensive first,
each to the shard with the least cost so far (longest-processing-time first, within 4/3
of the best split). Ties break on the case id, so the split depends only on the ids and
their costs, never on the order of the matrix file.

Costs come from a previous results file (``--durations-path FILE``: each case's measured
``duration_s``) when it has the case; otherwise from a cost model: the architecture's
multiply-accumulates at the input size times a per-backend and per-dtype factor
(seconds per GMAC, fitted on ``default_durations.json``), scaled to the durations file's
speed when one is given.
Shard 1 starts with the claims' cost, since only it runs them.
No torch here: the split is pure arithmetic on the expanded cases.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resnetbench.matrix import Case as _Case


# torchvision's published GMACs ("GFLOPS" in its docs) at 224x224, batch 1.
GMACS_224: dict[str, float] = {
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
}
# The cost model is fitted on this file: a cold run of the default matrix on this
# project's 2-core machines, trimmed to each case's axes and duration_s.
DEFAULT_DURATIONS = Path(__file__).with_name("default_durations.json")


@functools.cache
def _fit() -> tuple[dict[tuple[str, str], float], float]:
    """Seconds per GMAC (at 224x224) by (backend, dtype): the median duration_s / GMACs of the
    cases run in DEFAULT_DURATIONS; and the seconds that run spent outside its cases (the
    claims and the session's set-up), which only shard 1 pays."""
    data = json.loads(DEFAULT_DURATIONS.read_text(encoding="utf-8"))
    per: dict[tuple[str, str], list[float]] = {}
    for c in data["cases"]:
        if c["outcome"] != "skipped" and c.get("duration_s") and c["arch"] in GMACS_224:
            gmacs = GMACS_224[c["arch"]] * (c.get("input_size", 224) / 224) ** 2 * c["batch"]
            per.setdefault((c["backend"], c["dtype"]), []).append(c["duration_s"] / gmacs)
    wall = (dt.datetime.fromisoformat(data["finished"]) - dt.datetime.fromisoformat(data["started"])).total_seconds()
    outside_cases = wall - sum(c.get("duration_s") or 0.0 for c in data["cases"])
    return {key: statistics.median(v) for key, v in per.items()}, max(outside_cases, 0.0)


def _factor(backend: str, dtype: str) -> float:
    """A combination the fit has not seen costs its backend's median, else the median of all."""
    factors = _fit()[0]
    if (backend, dtype) in factors:
        return factors[(backend, dtype)]
    same_backend = [f for (b, _), f in factors.items() if b == backend]
    return statistics.median(same_backend or list(factors.values()))


def model_cost(case: _Case, input_size: int) -> float:
    """Expected seconds of a case from the cost model."""
    gmacs = GMACS_224.get(case.arch, statistics.median(GMACS_224.values())) * (input_size / 224) ** 2 * case.batch
    return gmacs * _factor(case.backend, case.dtype)


def durations_from(results: Mapping[str, Any]) -> dict[str, float]:
    """Case id -> measured seconds, from a results file's cases that recorded ``duration_s``."""
    return {c["id"]: float(c["duration_s"]) for c in results.get("cases", [])
            if isinstance(c.get("duration_s"), (int, float)) and c["duration_s"] > 0}


def _scale(cases: Sequence[_Case], input_size: int, durations: Mapping[str, float] | None) -> float:
    """Measured seconds per modelled second on the machine that measured the durations (1.0 without)."""
    known = [c for c in cases if durations and c.id in durations and model_cost(c, input_size) > 0]
    if not durations or not known:
        return 1.0
    return statistics.median(durations[c.id] / model_cost(c, input_size) for c in known)


def expected_costs(cases: Sequence[_Case], input_size: int,
                   durations: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each case's expected cost: its measured duration, else the model's, in the durations' scale."""
    scale = _scale(cases, input_size, durations)
    return {c.id: durations[c.id] if durations and c.id in durations else model_cost(c, input_size) * scale
            for c in cases}


def assign(costs: Mapping[str, float], n: int, first_shard_start: float = 0.0) -> dict[str, int]:
    """Case id -> shard index (0-based): most expensive first, each to the least loaded shard.

    ``first_shard_start``: work shard 1 does besides its cases (the guide's claims).
    """
    if n < 1:
        raise ValueError(f"cannot split into {n} shards")
    loads = [0.0] * n
    loads[0] = first_shard_start
    out: dict[str, int] = {}
    for case_id in sorted(costs, key=lambda i: (-costs[i], i)):
        shard = min(range(n), key=lambda s: (loads[s], s))
        out[case_id] = shard
        loads[shard] += costs[case_id]
    return out


def claims_cost(cases: Sequence[_Case], input_size: int, durations: Mapping[str, float] | None = None) -> float:
    """Expected seconds of the claims (shard 1's extra work), in the durations' scale."""
    return _fit()[1] * _scale(cases, input_size, durations)


def shard_cases(cases: Sequence[_Case], k: int, n: int, input_size: int,
                durations: Mapping[str, float] | None = None, claims: bool = True) -> list[Any]:
    """The cases of shard ``k`` of ``n`` (1-based), in matrix order (``claims``: shard 1 also runs them)."""
    start = claims_cost(cases, input_size, durations) if claims else 0.0
    shard_of = assign(expected_costs(cases, input_size, durations), n, start)
    return [c for c in cases if shard_of[c.id] == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """``'2/4'`` -> (2, 4); ValueError naming the input otherwise."""
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"shard {text!r}: expected K/N with integers, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise ValueError(f"shard {text!r}: K must be between 1 and N")
    return k, n


def loads(costs: Mapping[str, float], n: int, first_shard_start: float = 0.0) -> list[float]:
    """Total expected cost of each shard under ``assign``."""
    totals = [0.0] * n
    totals[0] = first_shard_start
    for case_id, shard in assign(costs, n, first_shard_start).items():
        totals[shard] += costs[case_id]
    return totals
