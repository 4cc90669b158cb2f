"""The matrix's settings sections as typed classes: the one home of each key's type, default,
bounds and one-line doc.

``config.json_schema`` (and so ``resnetbench schema`` and the docs' matrix reference) takes each
section's schema from its class, and ``config.load_config`` builds the class from the validated
mapping, so a default written here is the default a run gets, in the schema and in the docs.

A section is a frozen dataclass whose fields are its keys. It also reads as a mapping of its
set keys (``section["rounds"]``, ``section.get("dir")``, ``dict(section)``): backends and
methods from other packages were handed these sections as dicts and keep working.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from resnetbench.domain import DEFAULT_THRESHOLD

__all__ = ["CacheSettings", "DatasetSettings", "DeploymentSettings", "GateSettings", "LatencySettings",
           "LimitsSettings", "ProfileSettings", "SECTIONS", "ScenarioSettings", "Section", "TuningSettings", "setting"]

# JSON Schema types of the annotations sections use (``from __future__ import annotations``
# leaves them as text); ``X | None`` is the same type, unset.
JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string",
              "dict[str, str]": "object", "dict[str, Any]": "object", "tuple[dict[str, str], ...]": "array",
              "tuple[str, ...]": "array"}
RECIPE_NAME = r"^[a-z0-9][a-z0-9_.+-]{0,63}$"
PROCESSES_ENV = "RESNETBENCH_LATENCY_PROCESSES"
SYNTHETIC_SAMPLES = 64  # evaluation images of ``dataset: synthetic`` without ``samples``
CALIBRATION_SAMPLES = 64  # calibration images of a calibrating method that does not say
DEFAULT_LATENCY_PROCESSES = 3

S = TypeVar("S", bound="Section")


def setting(default: Any, doc: str, *, factory: Callable[[], Any] | None = None, **schema: Any) -> Any:
    """A section's key: its default (``factory`` for one decided at run time), its one-line doc,
    and its JSON Schema bounds (``minimum``, ``enum``, ...)."""
    metadata = {"doc": doc, "schema": schema}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _default(item: Field[Any]) -> Any:
    if item.default_factory is not MISSING:
        return item.default_factory()
    return None if item.default is MISSING else item.default


@dataclass(frozen=True)
class Section(Mapping[str, Any]):
    """Base of the sections: schema, defaults and mapping access from the fields."""

    key: ClassVar[str]  # the section's key in a matrix file
    doc: ClassVar[str]

    @classmethod
    def json_schema(cls, **names: list[str]) -> dict[str, Any]:
        """The section's JSON Schema. ``names``: the registry names a key's ``x-names`` asks for
        (``backends``: the names ``tuning.recipes`` may use)."""
        properties = {}
        for item in fields(cls):
            schema = dict(item.metadata["schema"])
            wanted = schema.pop("x-names", None)
            if wanted is not None:
                schema["propertyNames"] = {"enum": list(names.get(wanted, []))}
            json_type = JSON_TYPES[str(item.type).removesuffix(" | None")]
            prop = {"type": json_type, **schema, "description": item.metadata["doc"]}
            default = _default(item)
            if default is not None and default != ():
                prop["default"] = default
            properties[item.name] = prop
        return {"type": "object", "additionalProperties": False, "description": cls.doc, "properties": properties}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each key's default as a run gets it (None: decided elsewhere, see the key's doc)."""
        return {item.name: _default(item) for item in fields(cls)}

    @classmethod
    def from_mapping(cls: type[S], data: Mapping[str, Any] | None) -> S:
        """The section from a validated mapping (the schema has refused unknown keys and bad types)."""
        return cls(**dict(data or {}))

    def to_dict(self) -> dict[str, Any]:
        """The keys that have a value, as plain data (results files, cache keys)."""
        return {key: _plain(value) for key, value in self._set().items()}

    def _set(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self) if getattr(self, item.name) is not None}

    # Mapping access, for code written against the dict sections.
    def __getitem__(self, key: str) -> Any:
        value = self._set().get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def default_latency_processes() -> int:
    """``latency.processes`` where the matrix does not set it: ``$RESNETBENCH_LATENCY_PROCESSES``
    (this project's own test suite sets 1: its end-to-end runs check the flow, not the gate's
    error rates) or DEFAULT_LATENCY_PROCESSES. A value that is not a whole number from 1 to 20 is ignored."""
    text = os.environ.get(PROCESSES_ENV, "")
    return int(text) if text.isdigit() and 1 <= int(text) <= 20 else DEFAULT_LATENCY_PROCESSES


@dataclass(frozen=True)
class LatencySettings(Section):
    """How each latency case is timed.

    28-40 ms a call here depending on the machine's period: 20 rounds + 40 pairs (109 calls)
    stay under a 5 s budget per case; the gate needs the pairs more than the plain loop needs
    rounds (p90 needs 64 rounds). ``processes``: the latency phase runs in that many separate
    processes, because a case's case/reference ratio moves between processes more than within
    one (issue 27: one process per side gave 4 false "regressed" in 36 A/A comparisons).
    """

    key: ClassVar[str] = "latency"
    doc: ClassVar[str] = "how each latency case is timed"

    warmup: int = setting(5, "untimed calls before the timing", minimum=0, maximum=10_000)
    rounds: int = setting(20, "timed calls in the pytest-benchmark loop (the reported latency)",
                          minimum=1, maximum=100_000)
    pairs: int = setting(40, "[reference call, case call] pairs timed for the gate", minimum=1, maximum=10_000)
    blocks: int = setting(8, "blocks the pairs are cut into (the gate's unit)", minimum=1, maximum=1_000)
    retimes: int = setting(2, "re-timings of a case whose timing was unstable", minimum=0, maximum=5)
    processes: int = setting(None, "separate processes that time each latency case (the run and processes - 1 "
                                   "re-timings of its latency phase); the gate resamples processes",
                             factory=default_latency_processes, minimum=1, maximum=20)


@dataclass(frozen=True)
class GateSettings(Section):
    """The regression gate's settings, carried into the results file for ``resnetbench compare``."""

    key: ClassVar[str] = "gate"
    doc: ClassVar[str] = "the regression gate (resnetbench compare, --baseline)"

    threshold: float = setting(DEFAULT_THRESHOLD, "relative latency slowdown that counts",
                               exclusiveMinimum=0, exclusiveMaximum=10)
    memory_threshold: float = setting(0.25, "relative growth of peak memory that counts",
                                      exclusiveMinimum=0, exclusiveMaximum=10)
    cold_start_threshold: float = setting(0.25, "relative growth of cold start that counts",
                                          exclusiveMinimum=0, exclusiveMaximum=10)
    capacity_threshold: float = setting(0.10, "relative fall of LoadGen Offline throughput or Server capacity "
                                              "that counts (scenarios)", exclusiveMinimum=0, exclusiveMaximum=1)
    allow: tuple[dict[str, str], ...] = setting(
        (), "cases the fail-closed gate lets through, each with the reason it prints",
        items={"type": "object", "additionalProperties": False, "required": ["id", "reason"],
               "properties": {"id": {"type": "string", "minLength": 1},
                              "reason": {"type": "string", "minLength": 1}}})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GateSettings:
        data = dict(data or {})
        return cls(**{**data, "allow": tuple(dict(a) for a in data.get("allow", ()))})


@dataclass(frozen=True)
class TuningSettings(Section):
    """Recipe choice per artifact (tuning.py)."""

    key: ClassVar[str] = "tuning"
    doc: ClassVar[str] = "how each artifact's run recipe is chosen (backends/base.py Recipe, tuning.py)"

    enabled: bool = setting(True, "time the backend's recipes and keep the fastest")
    budget_s: float = setting(20.0, "seconds of timing per artifact", exclusiveMinimum=0, maximum=3600)
    recipes: dict[str, str] = setting(None, "backend -> the recipe to pin (no timing)", factory=dict,
                                      additionalProperties={"type": "string", "pattern": RECIPE_NAME},
                                      **{"x-names": "backends"})

    def pinned(self, backend: str, recipe: str) -> TuningSettings:
        """These settings with ``backend``'s recipe pinned."""
        return TuningSettings(enabled=self.enabled, budget_s=self.budget_s, recipes={**self.recipes, backend: recipe})

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "budget_s": self.budget_s, "recipes": dict(self.recipes)}

    def _set(self) -> dict[str, Any]:
        return self.to_dict()  # recipes is part of the section even when empty


@dataclass(frozen=True)
class ProfileSettings(Section):
    """Per-layer profiles (backends/profile.py), when the matrix has a ``profile:`` section."""

    key: ClassVar[str] = "profile"
    doc: ClassVar[str] = "per-layer profile of every latency case in a pass of its own (backends/profile.py)"

    calls: int = setting(20, "profiled calls", minimum=1, maximum=10_000)


@dataclass(frozen=True)
class DeploymentSettings(Section):
    """Cold start and memory in fresh processes (measure/deployment.py), when the matrix asks."""

    key: ClassVar[str] = "deployment"
    doc: ClassVar[str] = "measure each case's cold start and memory in fresh processes (measure/deployment.py)"

    runs: int = setting(3, "fresh processes per case", minimum=1, maximum=50)


@dataclass(frozen=True)
class LimitsSettings(Section):
    """Per-test limits under ``--isolate`` (isolation.py)."""

    key: ClassVar[str] = "limits"
    doc: ClassVar[str] = "per test of a case, enforced under --isolate (the worker is killed past them)"

    timeout_s: float = setting(1800.0, "seconds a test may run", exclusiveMinimum=0)
    memory_gb: float | None = setting(None, "resident GB a worker may hold (default 85% of the machine's memory)",
                                      exclusiveMinimum=0)


@dataclass(frozen=True)
class CacheSettings(Section):
    """Where the artifact cache lives and how large it may grow (cache.py)."""

    key: ClassVar[str] = "cache"
    doc: ClassVar[str] = "the artifact cache"

    dir: str | None = setting(None, "its directory (default: $RESNETBENCH_CACHE or .resnetbench-cache)")
    max_gb: float | None = setting(None, "size above which the least recently used entries are evicted",
                                   exclusiveMinimum=0, maximum=1_000_000)


@dataclass(frozen=True)
class DatasetSettings(Section):
    """The accuracy inputs. A matrix may also write the name alone (``dataset: digits``)."""

    key: ClassVar[str] = "dataset"
    doc: ClassVar[str] = "the accuracy inputs (default: synthetic)"

    name: str = setting("synthetic", "synthetic images, scikit-learn's digits, or a folder of class folders",
                        enum=["synthetic", "digits", "imagefolder"])
    path: str | None = setting(None, "the image folder (name: imagefolder)")
    labels: str | None = setting(None, "JSON file mapping each class folder to a class index")
    calibration: str | None = setting(None, "folder of calibration images for static int8 (default: images of "
                                            "`path` the evaluation does not use)")
    samples: int | None = setting(None, f"evaluation images (synthetic: {SYNTHETIC_SAMPLES}; digits and image "
                                        "folders: every image)", minimum=1, maximum=1_000_000)
    seed: int | None = setting(None, "seed of the synthetic images and of the sample draw", minimum=0,
                               maximum=2**32 - 1)


@dataclass(frozen=True)
class ScenarioSettings(Section):
    """MLPerf LoadGen's scenarios against each case (measure/loadgen.py), when the matrix has a
    ``scenarios:`` section. A scenario runs when its key is there (``offline: {}`` runs Offline)."""

    key: ClassVar[str] = "scenarios"
    doc: ClassVar[str] = ("run MLPerf LoadGen's scenarios against each case (measure/loadgen.py); a scenario runs "
                          "when its key is present")

    singlestream: dict[str, Any] | None = setting(None, "SingleStream: one sample a query, the next when it is "
                                                        "answered; reports p90", additionalProperties=False)
    multistream: dict[str, Any] | None = setting(None, "MultiStream: 8 samples a query; reports the p99 of a query",
                                                 additionalProperties=False)
    offline: dict[str, Any] | None = setting(None, "Offline: every sample in one query; reports samples/s",
                                             additionalProperties=False)
    server: dict[str, Any] | None = setting(
        None, "Server: Poisson arrivals; the capacity is the highest QPS whose p99 stays within p99_ms "
              "(default 15, MLPerf's bound for ResNet-50)", additionalProperties=False,
        properties={"p99_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 60_000,
                               "description": "the p99 latency bound, ms"},
                    "refine_runs": {"type": "integer", "minimum": 0, "maximum": 100,
                                    "description": "runs around the p99 crossing after the search, which the "
                                                   "capacity gate compares (default 12)"}})
    seconds: float = setting(2.0, "minimum duration of each LoadGen performance run (MLPerf: 600; these runs are "
                                  "not valid MLPerf results and the record says so)", exclusiveMinimum=0, maximum=3600)
    min_queries: int = setting(600, "minimum queries of each performance run (Server: at least 460, the fewest "
                                    "from which LoadGen's early stopping can prove a p99)", minimum=1,
                               maximum=10_000_000)
    cases: tuple[str, ...] = setting((), "case id patterns (fnmatch, e.g. resnet50-*) LoadGen runs against; "
                                         "empty: every case", items={"type": "string", "minLength": 1})
    repeats: int = setting(5, "Offline runs of the kept split; the gate compares their samples/s (gate."
                              "capacity_threshold)", minimum=1, maximum=100)
    sweep: bool = setting(True, "time every split of the threads into streams x threads (Offline) and keep the "
                                "fastest; false: one stream with every thread")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ScenarioSettings:
        data = dict(data or {})
        return cls(**{**data, "cases": tuple(data.get("cases", ()))})


# Every typed section, by its key in a matrix file.
SECTIONS: dict[str, type[Section]] = {cls.key: cls for cls in (
    LatencySettings, GateSettings, TuningSettings, ProfileSettings, DeploymentSettings, LimitsSettings,
    CacheSettings, DatasetSettings, ScenarioSettings)}
