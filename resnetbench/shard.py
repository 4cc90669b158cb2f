"""Split a matrix's cases into N shards of about equal expected cost, keyed by case id.

``--shard K/N`` used to take every N-th case by position: ResNet-152 cases cost ~10x
ResNet-18 ones, so shards came out unbalanced, and a line added to the matrix moved every
case after it to another shard. Here, as pytest-split does with its stored durations,
each case gets an expected cost and the cases are dealt greedily, most expensive first,
each to the shard with the least cost so far (longest-processing-time first, within 4/3
of the best split). Ties break on the case id, so the split depends only on the ids and
their costs, never on the order of the matrix file.

Costs come from a previous results file (``--durations FILE``: each case's measured
``duration_s``) when it has the case; otherwise from a cost model: the architecture's
multiply-accumulates at the input size times a per-backend and per-dtype factor
(seconds per GMAC, ``FACTORS``), scaled to the durations file's speed when one is given.
No torch here: the split is pure arithmetic on the expanded cases.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resnetbench.matrix import Case as _Case


# torchvision's published GMACs ("GFLOPS" in its docs) at 224x224, batch 1.
GMACS_224: dict[str, float] = {
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
}
# Wall seconds of a whole case (build, size, accuracy, latency) per GMAC, by backend and
# by dtype, fitted on this project's 2-core machines (README, "Sharding"). A backend or
# dtype not listed costs what the median listed one does.
BACKEND_FACTORS: dict[str, float] = {}
DTYPE_FACTORS: dict[str, float] = {}
DEFAULT_FACTOR = 1.0


def model_cost(case: _Case, input_size: int) -> float:
    """Expected seconds of a case from the cost model."""
    gmacs = GMACS_224.get(case.arch, statistics.median(GMACS_224.values())) * (input_size / 224) ** 2 * case.batch
    backend = BACKEND_FACTORS.get(case.backend, statistics.median(BACKEND_FACTORS.values()) if BACKEND_FACTORS
                                  else DEFAULT_FACTOR)
    dtype = DTYPE_FACTORS.get(case.dtype, 1.0)
    return gmacs * backend * dtype


def durations_from(results: Mapping[str, Any]) -> dict[str, float]:
    """Case id -> measured seconds, from a results file's cases that recorded ``duration_s``."""
    return {c["id"]: float(c["duration_s"]) for c in results.get("cases", [])
            if isinstance(c.get("duration_s"), (int, float)) and c["duration_s"] > 0}


def expected_costs(cases: Sequence[_Case], input_size: int,
                   durations: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each case's expected cost: its measured duration, else the model's, in the durations' scale."""
    modelled = {c.id: model_cost(c, input_size) for c in cases}
    if not durations:
        return modelled
    known = [c.id for c in cases if c.id in durations]
    # Seconds per model unit on the machine that measured the durations (1.0 if none overlap).
    scale = statistics.median(durations[i] / modelled[i] for i in known) if known else 1.0
    return {c.id: durations[c.id] if c.id in durations else modelled[c.id] * scale for c in cases}


def assign(costs: Mapping[str, float], n: int) -> dict[str, int]:
    """Case id -> shard index (0-based): most expensive first, each to the least loaded shard."""
    if n < 1:
        raise ValueError(f"cannot split into {n} shards")
    loads = [0.0] * n
    out: dict[str, int] = {}
    for case_id in sorted(costs, key=lambda i: (-costs[i], i)):
        shard = min(range(n), key=lambda s: (loads[s], s))
        out[case_id] = shard
        loads[shard] += costs[case_id]
    return out


def shard_cases(cases: Sequence[_Case], k: int, n: int, input_size: int,
                durations: Mapping[str, float] | None = None) -> list[Any]:
    """The cases of shard ``k`` of ``n`` (1-based), in matrix order."""
    shard_of = assign(expected_costs(cases, input_size, durations), n)
    return [c for c in cases if shard_of[c.id] == k - 1]


def loads(costs: Mapping[str, float], n: int) -> list[float]:
    """Total expected cost of each shard under ``assign``."""
    totals = [0.0] * n
    for case_id, shard in assign(costs, n).items():
        totals[shard] += costs[case_id]
    return totals
