"""The results vocabulary: outcomes, axes, verdicts and gate decisions, defined once.

Never imports torch: compare, report and merge read results on machines without it.
Typed case records (dataclasses with ``to_dict``/``from_dict``) live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

# What a case (or one of its tests) ended as, worst first after "passed".
OUTCOMES = ("passed", "failed", "skipped", "error")
from resnetbench.domain import AXES as AXES  # noqa: E402 (re-exported: the results vocabulary)

# An accuracy verdict: "undecidable" is never shown or counted as passed.
ACCURACY_VERDICTS = ("passed", "failed", "undecidable")
# A latency record's stability after re-timing (measure/stability.py).
STABILITY_VERDICTS = ("stable", "retimed", "unstable")

# Gate decisions, worst news first. The gate fails closed: every decision in BLOCKING
# fails it unless an explicit allowance (``gate: {allow: [...]}`` in the matrix, or
# ``--allow``) names the case.
DECISIONS = (
    "failed",
    "regressed",
    "missing",
    "unstable",
    "inconclusive",
    "new",
    "improved",
    "unchanged",
)
BLOCKING = frozenset({"failed", "regressed", "missing", "unstable", "inconclusive"})
DECISION_LABELS = {
    "failed": "✖ FAILED",
    "regressed": "▲ REGRESSED",
    "missing": "− MISSING",
    "unstable": "~ UNSTABLE",
    "inconclusive": "? INCONCLUSIVE",
    "new": "+ new",
    "improved": "▼ improved",
    "unchanged": "= unchanged",
}


def lookup(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, or None as soon as a level is missing, null or not an object."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def timing_disturbed(case: Mapping[str, Any] | None) -> bool:
    """The machine's speed moved while this case's absolute figures were taken (measure/stability.py):
    the median is shown marked, and the gate, which compares paired ratios, still decides."""
    return lookup(case, "latency", "stability", "machine", "verdict") == "disturbed"


def timing_unstable(case: Mapping[str, Any] | None) -> bool:
    """The run marked this case's timing unstable (measure/stability.py): its figures are not results."""
    return lookup(case, "latency", "stability", "verdict") == "unstable"


def unstable_cases(cases: Iterable[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    """(id, reasons) of every case whose timing stayed unstable after re-timing."""
    return [(c.get("id"), "; ".join(lookup(c, "latency", "stability", "reasons") or []))
            for c in cases if timing_unstable(c)]


# --------------------------------------------------------------------------- typed records
#
# A case record and its parts, each with one ``to_dict``/``from_dict`` pair that keeps the
# results file's JSON shape exactly as it is:
#
# - A key the record has no field for lands in ``extra`` and is written back after the
#   typed keys (users add their own metrics); an extra key must not shadow a field.
# - A field that is None is left out of ``to_dict`` unless the dict it was read from had
#   that key (then it is written as ``null``): "absent" and "null" both round-trip.
# - ``from_dict`` remembers the key order it read and ``to_dict`` writes keys in that
#   order (new keys after it); a record built directly writes its fields in declaration
#   order, then ``extra``.
#
# Values are taken as they are (nested objects are plain dicts and lists, shared, not
# copied); ``results.load`` checks their types against ``results_schema()`` first.

_BOOKKEEPING = ("extra", "_keys")


@dataclass
class _Record:
    """The one to_dict/from_dict pair every record class shares."""

    PARTS: ClassVar[Mapping[str, type[_Record]]] = {}

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)
    _keys: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shadowed = sorted(set(self.extra) & set(self._field_names()))
        if shadowed:
            raise ValueError(f"{type(self).__name__}: extra keys {shadowed} shadow its fields")

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in _BOOKKEEPING)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (see the notes above on absent keys and order)."""
        out: dict[str, Any] = {}
        for name in self._field_names():
            value = getattr(self, name)
            if value is None and name not in self._keys:
                continue
            out[name] = value.to_dict() if isinstance(value, _Record) else value
        for key, value in self.extra.items():
            out.setdefault(key, value)
        if not self._keys:
            return out
        ordered = {key: out[key] for key in self._keys if key in out}
        ordered.update((key, value) for key, value in out.items() if key not in ordered)
        return ordered

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The record of a JSON object; keys without a field go to ``extra``."""
        names = cls._field_names()
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                extra[key] = value
                continue
            part = cls.PARTS.get(key)
            kwargs[key] = part.from_dict(value) if part is not None and value is not None else value
        record = cls(**kwargs, extra=extra)
        record._keys = tuple(data)
        return record


@dataclass
class SizeRecord(_Record):
    """The size test: closed-form bytes against the artifact's (``backends/size.py::size_record``)."""

    params: int | None = None
    dtype: str | None = None
    param_bytes: int | None = None
    buffer_bytes: int | None = None
    extra_bytes: int | None = None
    extra_detail: str | None = None
    formula_bytes: int | None = None
    formula_mb: float | None = None
    formula_mib: float | None = None
    buffers: int | None = None
    artifact_bytes: int | None = None
    artifact_mb: float | None = None
    artifact_mib: float | None = None
    artifact_files: dict[str, int] | None = None
    ratio: float | None = None
    allowed_deviation_bytes: int | None = None
    within_tolerance: bool | None = None
    tolerance: dict[str, float] | None = None
    params_before_pruning: int | None = None  # prune-channels cases: the unpruned count


@dataclass
class AccuracyRecord(_Record):
    """The accuracy test: metrics against the reference and each tolerance's check
    (``measure/accuracy.py::evaluate``, plus ``reference`` and ``dataset``)."""

    verdict: str  # ACCURACY_VERDICTS
    metrics: dict[str, float | None] | None = None
    agreement: dict[str, Any] | None = None
    margin: dict[str, Any] | None = None
    degenerate: str | None = None
    task: dict[str, Any] | None = None
    tolerances: dict[str, float] | None = None
    checks: list[dict[str, Any]] | None = None
    message: str | None = None
    reference: str | None = None
    dataset: dict[str, Any] | None = None
    # the case's outputs came from the artifact cache (same artifact, runner, inputs, threads, machine)
    outputs_cached: bool | None = None


@dataclass
class LatencyRecord(_Record):
    """The latency test: samples and their summary (``measure/latency.py::summarize``), FLOPs,
    roofline, the paired reference timings, stability (``measure/stability.py``) and the gate."""

    samples_ms: list[float] | None = None
    rounds: int | None = None
    median_ms: float | None = None
    mean_ms: float | None = None
    stdev_ms: float | None = None
    min_ms: float | None = None
    iqr_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput_ips: float | None = None
    flops: float | None = None
    macs: float | None = None
    flops_note: str | None = None
    gflops_per_s: float | None = None
    peak_fraction: float | None = None
    peak_basis: str | None = None
    roof_dtype: str | None = None  # the arithmetic whose roof peak_fraction divides by (roof.py)
    warmup: int | None = None
    paired: dict[str, Any] | None = None
    # the latency phase re-run in other processes (latency.processes): their paired timings
    # and stability, one object each; ``processes`` counts the processes with paired timings
    replicas: list[dict[str, Any]] | None = None
    processes: int | None = None
    stability: dict[str, Any] | None = None  # verdict: STABILITY_VERDICTS
    timed_outputs: dict[str, Any] | None = None  # every timed call's output checked (measure/timed_outputs.py)
    profile: dict[str, Any] | None = None  # per-unit times from the backend's profiler (backends/profile.py)
    threads: int | None = None
    ran_alone: bool | None = None
    foreign_load_cores: float | None = None
    steal_cores: float | None = None  # of those, the hypervisor's steal time
    wall_s: float | None = None
    timing_s: float | None = None
    runtime: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None  # decision: DECISIONS


@dataclass
class CaseRecord(_Record):
    """One case of the results file's ``cases``: its axes, outcome and the measurements.

    Fields are declared in the order the suite writes them. ``conversion`` (build
    timings), ``compression_info`` and ``artifact`` are open-ended and stay plain dicts.
    """

    PARTS: ClassVar[Mapping[str, type[_Record]]] = {
        "size": SizeRecord, "accuracy": AccuracyRecord, "latency": LatencyRecord,
    }

    arch: str
    dtype: str
    compression: str
    backend: str
    batch: int
    id: str
    outcome: str = "skipped"  # OUTCOMES
    reason: str | None = None
    input_size: int | None = None
    tests: dict[str, str] | None = None  # test kind (size/accuracy/latency) -> OUTCOMES
    tolerances: dict[str, float] | None = None
    settings: dict[str, Any] | None = None
    notes: list[str] | None = None
    conversion: dict[str, Any] | None = None
    compression_info: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None
    # Wall seconds of the case's tests (setup, call, teardown; the build falls in the first
    # setup): what ``--durations`` balances shards on.
    duration_s: float | None = None
    size: SizeRecord | None = None
    accuracy: AccuracyRecord | None = None
    latency: LatencyRecord | None = None
    # cold start and memory in fresh processes (measure/deployment.py), when the matrix asks
    deployment: dict[str, Any] | None = None
    # MLPerf LoadGen's scenarios (measure/loadgen.py, measure/scenarios_case.py), when the matrix asks
    scenarios: dict[str, Any] | None = None

    def note(self, text: str) -> None:
        """Append to ``notes`` (created if absent)."""
        if self.notes is None:
            self.notes = []
        self.notes.append(text)
