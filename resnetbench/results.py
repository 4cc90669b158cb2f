"""Results file: the one JSON shape that report, compare and merge read.

Never imports torch: reporting and gating run on machines without it.

Layout (``schema_version`` 1)::

    {
      "schema_version": 1,
      "environment": {...},          # fingerprint, libraries, threads, calibration, roofs per dtype
      "matrix_file": "matrix.yaml",
      "started": "2026-11-29T03:00:00+00:00",
      "finished": "...",
      "cases": [ {case record}, ... ],
      "claims": [ {claim record}, ... ]
    }

A case record has ``id, arch, dtype, compression, backend, batch, outcome, reason``,
``tests`` (outcome per measurement: size/accuracy/latency) and the optional
sub-objects ``size``, ``accuracy``, ``latency``, ``conversion``, ``notes``.
``records.CaseRecord`` is its typed form; ``results_schema()`` is its JSON Schema
(``resnetbench schema --results``), which ``load`` checks every file against.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema

from resnetbench.records import (
    ACCURACY_VERDICTS,
    AXES,
    DECISIONS,
    OUTCOMES,
    STABILITY_VERDICTS,
    AccuracyRecord,
    LatencyRecord,
    SizeRecord,
)

SCHEMA_VERSION = 1
CASE_KEYS = ("id", *AXES, "outcome")


class ResultsError(ValueError):
    """A results file that cannot be read or does not have the expected shape."""


# --------------------------------------------------------------------------- JSON Schema

SCHEMA_ID = "urn:resnetbench:results:1"


def _t(*types: str) -> dict[str, Any]:
    return {"type": list(types) if len(types) > 1 else types[0]}


_NUM = _t("number", "null")
_INT = _t("integer", "null")
_STR = _t("string", "null")
_OBJ = _t("object", "null")
_BOOL = _t("boolean", "null")

# The typed keys of each part, one entry per field of its records.py class (tests check
# that they match). Every part also allows keys of its own (additionalProperties).
SIZE_PROPERTIES: dict[str, Any] = {
    "params": _INT, "dtype": _STR, "param_bytes": _INT, "buffer_bytes": _INT, "extra_bytes": _INT,
    "extra_detail": _STR, "formula_bytes": _INT, "formula_mb": _NUM, "formula_mib": _NUM, "buffers": _INT,
    "artifact_bytes": _INT, "artifact_mb": _NUM, "artifact_mib": _NUM,
    "artifact_files": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}},
    "ratio": _NUM, "allowed_deviation_bytes": _INT, "within_tolerance": _BOOL,
    "tolerance": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
    "params_before_pruning": _INT,
}
ACCURACY_PROPERTIES: dict[str, Any] = {
    "verdict": {"type": "string", "enum": list(ACCURACY_VERDICTS)},
    "metrics": _OBJ, "agreement": _OBJ, "margin": _OBJ, "degenerate": _STR, "task": _OBJ,
    "tolerances": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
    "checks": {"type": ["array", "null"], "items": {"type": "object"}},
    "message": _STR, "reference": _STR, "dataset": _OBJ, "outputs_cached": _BOOL,
}
LATENCY_PROPERTIES: dict[str, Any] = {
    # the items are checked by compare, which says "must be a list of positive numbers"
    "samples_ms": _t("array", "null"),
    "rounds": _INT, "median_ms": _NUM, "mean_ms": _NUM, "stdev_ms": _NUM, "min_ms": _NUM, "iqr_ms": _NUM,
    "p90_ms": _NUM, "p99_ms": _NUM, "throughput_ips": _NUM, "flops": _NUM, "macs": _NUM, "flops_note": _STR,
    "gflops_per_s": _NUM, "peak_fraction": _NUM, "peak_basis": _STR, "roof_dtype": _STR, "warmup": _INT,
    "paired": _OBJ,
    "replicas": {"type": ["array", "null"], "items": {"type": "object"}},
    "processes": _INT,
    "stability": {
        "type": ["object", "null"],
        "properties": {
            "verdict": {"type": "string", "enum": list(STABILITY_VERDICTS)},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "attempts": {"type": "array", "items": {"type": "object"}},
            "machine": {"type": "object", "properties": {
                "verdict": {"type": "string", "enum": ["quiet", "disturbed"]},
                "reasons": {"type": "array", "items": {"type": "string"}}}},
            "cause": _STR,
        },
    },
    "timed_outputs": {
        "type": ["object", "null"],
        "properties": {"verdict": {"type": "string", "enum": ["passed", "failed", "undecidable"]},
                       "checked": {"type": "integer", "minimum": 0}},
    },
    "profile": {
        "type": ["object", "null"],
        "properties": {"total_ms": _NUM, "calls": _INT, "cost_s": _NUM,
                       "units": {"type": "array", "items": {"type": "object", "required": ["name", "ms"],
                                                            "properties": {"name": _STR, "ms": _NUM}}}},
    },
    "threads": _INT, "ran_alone": _BOOL, "foreign_load_cores": _NUM, "steal_cores": _NUM, "wall_s": _NUM, "timing_s": _NUM, "runtime": _OBJ,
    "gate": {
        "type": ["object", "null"],
        "properties": {"decision": {"type": "string", "enum": list(DECISIONS)}},
    },
}
_PARTS: dict[str, tuple[type[Any], dict[str, Any], list[str]]] = {
    "size": (SizeRecord, SIZE_PROPERTIES, []),
    "accuracy": (AccuracyRecord, ACCURACY_PROPERTIES, ["verdict"]),
    "latency": (LatencyRecord, LATENCY_PROPERTIES, []),
}


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a results file, ``schema_version`` 1.

    Top-level and case keys are typed; the vocabularies (outcomes, verdicts, decisions)
    come from ``records``. Every object allows keys of its own: results files carry
    user metrics and the environment is open-ended.
    """
    parts = {
        name: {
            "type": "object",
            "description": f"records.{cls.__name__}",
            **({"required": required} if required else {}),
            "properties": properties,
            "additionalProperties": True,
        }
        for name, (cls, properties, required) in _PARTS.items()
    }
    case = {
        "type": "object",
        "description": "records.CaseRecord",
        "required": list(CASE_KEYS),
        "properties": {
            "arch": {"type": "string"},
            "dtype": {"type": "string"},
            "compression": {"type": "string"},
            "backend": {"type": "string"},
            "batch": {"type": "integer", "minimum": 1},
            "id": {"type": "string", "minLength": 1},
            "outcome": {"type": "string", "enum": list(OUTCOMES)},
            "reason": {"type": "string"},
            "input_size": {"type": "integer", "minimum": 1},
            "tests": {"type": "object", "additionalProperties": {"type": "string", "enum": list(OUTCOMES)}},
            "tolerances": {"type": "object", "additionalProperties": {"type": "number"}},
            "settings": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "conversion": {"type": "object"},
            "compression_info": {"type": "object"},
            "artifact": {"type": "object"},
            "duration_s": {"type": "number", "minimum": 0},
            **{name: {"$ref": f"#/$defs/{name}"} for name in parts},
            "deployment": {
                "type": ["object", "null"],
                "properties": {"runs": {"type": "integer", "minimum": 1},
                               "samples": {"type": "array", "items": {"type": "object"}},
                               **{k: _NUM for k in ("cold_start_s", "import_s", "load_s", "first_output_s",
                                                    "load_peak_mb", "resident_mb", "inference_peak_mb")}},
            },
            # MLPerf LoadGen's scenarios (measure/scenarios_case.py); figures that are not MLPerf results
            "scenarios": {"type": ["object", "null"],
                          "properties": {"mlperf_valid": {"const": False}, "why_not_mlperf": {"type": "string"},
                                         "kept": {"type": "object"}, "splits": {"type": "array"},
                                         "accuracy": {"type": "object"}, "capacity_qps": _NUM}},
        },
        "additionalProperties": True,
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "resnetbench results file",
        "description": "What `pytest --matrix` writes and report, compare and merge read.",
        "type": "object",
        "required": ["schema_version", "environment", "cases", "claims"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "matrix_file": {"type": "string"},
            "started": {"type": "string"},
            "finished": {"type": "string"},
            "environment": {
                "type": "object",
                # merge and compare read the fingerprint's hash to tell machines apart; the
                # report's machine header reads these parts (on the fingerprint or beside it)
                "properties": {
                    "fingerprint": {"type": ["object", "null"], "properties": {
                        "hash": _STR, "libraries": _OBJ, "cpu_flags": _t("array", "string", "null")}},
                    "libraries": _OBJ,
                    "cpu_flags": _t("array", "string", "null"),
                    "calibration": _OBJ,
                },
            },
            "gate": {"type": "object"},
            "shards": {"type": "array", "items": {"type": "string"}},
            "shard": {"type": "string", "pattern": "^[0-9]+/[0-9]+$"},
            "matrix_cases": {"type": "array", "items": {"type": "string"}},
            "merge": {"type": "object"},
            "cases": {"type": "array", "items": {"$ref": "#/$defs/case"}},
            "claims": {
                "type": "array",
                "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            },
        },
        "additionalProperties": True,
        "$defs": {"case": case, **parts},
    }
    return copy.deepcopy(schema)  # the property tables above are shared; callers may edit theirs


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(results_schema())


def json_path(parts: Iterable[str | int]) -> str:
    """``['cases', 3, 'latency', 'median_ms']`` -> ``'cases[3].latency.median_ms'``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _what(error: jsonschema.ValidationError) -> str:
    """What is wrong, in one short line (jsonschema's messages repeat the whole value)."""
    value, rule = error.instance, error.validator_value
    if error.validator == "type":
        kind = _JSON_TYPES.get(type(value), "a number")
        expected = " or ".join([rule] if isinstance(rule, str) else rule)
        return f"{_short(value)} is {kind}, expected {expected}"
    if error.validator == "enum":
        return f"{_short(value)} is not allowed; allowed: {', '.join(map(str, rule))}"
    if error.validator == "required" and isinstance(value, dict):
        return "lacks " + ", ".join(k for k in rule if k not in value)
    if error.validator == "const":
        return f"{_short(value)} must be {_short(rule)}"
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def validate(data: Any, source: str = "results") -> None:
    """Check results data against ``results_schema()``; raises ResultsError naming the first problem:
    ``results.json: cases[3].latency.median_ms (resnet18-fp32-none-eager-b1): "fast" is a string, ...``."""
    error = next(iter(_validator().iter_errors(data)), None)
    if error is None:
        return
    path = list(error.absolute_path)
    where = json_path(path) or "top level"
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        case = data["cases"][path[1]]
        if isinstance(case, dict) and isinstance(case.get("id"), str):
            where += f" ({case['id']})"
    raise ResultsError(f"{source}: {where}: {_what(error)}")


def combine_outcomes(outcomes: Iterable[str]) -> str:
    """One outcome for a case from the outcomes of its tests (worst wins)."""
    seen = set(outcomes)
    for worst in ("error", "failed", "passed"):
        if worst in seen:
            return worst
    return "skipped"


def write_atomic(path: str | os.PathLike[str], data: dict[str, Any], default: Any = None) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=False, default=default or _jsonable)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# A results file holds a few KB per case (the default matrix's, about 40 cases, is under
# 1 MB): a file above this is not one, and is refused before JSON parses it.
MAX_RESULTS_BYTES = 256 * 1024 * 1024


class _Refused(ValueError):
    """JSON that parses but is not data a results file can hold (raised by the parser's hooks)."""


def _read_bounded(path: Path) -> str:
    """The text of a results file: refused when unreadable, a directory, above
    MAX_RESULTS_BYTES (before reading it) or not UTF-8."""
    try:
        with path.open("rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_RESULTS_BYTES:
                raise ResultsError(f"{path}: {info.st_size:,} bytes is too large for a results file "
                                   f"(at most {MAX_RESULTS_BYTES:,}); refused before reading it")
            raw = fh.read(MAX_RESULTS_BYTES + 1)  # a pipe (compare <(...)) has no size to ask
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: is a directory, not a results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_RESULTS_BYTES:
        raise ResultsError(f"{path}: more than {MAX_RESULTS_BYTES:,} bytes is too large for a results file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                           f"not a results file") from None


def loads(text: str, source: str = "results") -> Any:
    """Parse results JSON strictly; ResultsError naming ``source`` and the problem.

    Python's json reads NaN, Infinity and 1e999 (an infinite float), which no gate can
    compare, and keeps the last of a key written twice: all four are refused here, as are
    truncated JSON (said so), nesting too deep for the parser, and integers of more digits
    than Python converts.
    """

    def constant(name: str) -> Any:
        raise _Refused(f"{name} is not a number (JSON has no NaN or Infinity; a measurement that produced one "
                       f"cannot be compared)")

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise _Refused(f"{literal[:40]} is too large for a number")
        return value

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _Refused(f"key {_short(key, 60)} appears twice in one object")
            out[key] = value
        return out

    try:
        return json.loads(text, parse_constant=constant, parse_float=number, object_pairs_hook=pairs)
    except _Refused as exc:
        found = re.search(r"NaN|-?Infinity", text) if "JSON has no NaN" in str(exc) else None
        line = f":{text.count(chr(10), 0, found.start()) + 1}" if found else ""
        raise ResultsError(f"{source}{line}: {exc}") from None
    except json.JSONDecodeError as exc:
        ends = (" (the file ends early: truncated?)"
                if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string") else "")
        raise ResultsError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}{ends}") from None
    except RecursionError:
        raise ResultsError(f"{source}: not valid results JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ResultsError(f"{source}: not valid results JSON: {_short(str(exc), 120)}") from None


def check_output(path: str | os.PathLike[str], option: str) -> None:
    """Refuse an output path that cannot be written, before any work and before anything is
    written: a directory, a path below a file, a directory this process may not write to.

    ResultsError names the option and the path. (A failure this cannot see, e.g. a
    read-only file system, still surfaces when writing, and atomic writes leave the old file.)
    """
    target = Path(path)
    if target.is_dir():
        raise ResultsError(f"{option} {target}: is a directory; give a file path, e.g. {target / 'out'}")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ResultsError(f"{option} {target}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ResultsError(f"{option} {target}: the directory {parent} is not writable")


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a results file (``results_schema()``); raises ResultsError with the file,
    the JSON path of the first problem and what is wrong."""
    path = Path(path)
    data = loads(_read_bounded(path), str(path))
    if not isinstance(data, dict) or "cases" not in data:
        raise ResultsError(f"{path}: not a resnetbench results file (no 'cases' list)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema_version {_short(version)} is not supported (expected {SCHEMA_VERSION}): "
            f"written by another version of resnetbench, or not by resnetbench"
        )
    if not isinstance(data["cases"], list):
        raise ResultsError(f"{path}: 'cases' must be a list")
    for i, case in enumerate(data["cases"]):
        if not isinstance(case, dict):
            raise ResultsError(f"{path}: cases[{i}] is not an object")
        missing = [k for k in CASE_KEYS if k not in case]
        if missing:
            raise ResultsError(f"{path}: cases[{i}] lacks {', '.join(missing)}")
        if case["outcome"] not in OUTCOMES:
            raise ResultsError(
                f"{path}: cases[{i}] ({str(case['id'])[:80]}) has outcome {repr(case['outcome'])[:60]};"
                f" allowed: {', '.join(OUTCOMES)}"
            )
    validate(data, str(path))
    return data


def merge(paths: Iterable[str | os.PathLike[str]], *, allow_mixed: bool = True) -> dict[str, Any]:
    """Merge shard results into one file's shape.

    A case id present twice keeps the last. What the merge found is recorded under
    ``merge``: ids present more than once, cases of the sharded matrix that no file holds,
    and shards ``K/N`` no file came from (sharded runs record their shard and the matrix's
    case ids). With ``allow_mixed=False`` files from different machines or library
    versions (their ``environment.fingerprint.hash`` differs or is absent) are refused:
    their latencies cannot be gated as one run.
    """
    merged: dict[str, Any] | None = None
    by_id: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {}
    duplicates: set[str] = set()
    fingerprints: dict[str, str | None] = {}
    matrix_cases: set[str] = set()
    shards_seen: set[str] = set()
    for path in paths:
        data = load(path)
        if merged is None:
            merged = {k: v for k, v in data.items() if k not in ("cases", "claims", "shard", "matrix_cases")}
            merged["shards"] = []
        merged["shards"].append(str(path))
        fingerprints[str(path)] = ((data.get("environment") or {}).get("fingerprint") or {}).get("hash")
        for case in data["cases"]:
            if case["id"] in by_id:
                duplicates.add(case["id"])
            by_id[case["id"]] = case
        for claim in data.get("claims", []):
            claims[claim["id"]] = claim
        if data.get("shard"):
            shards_seen.add(str(data["shard"]))
            matrix_cases.update(data.get("matrix_cases") or [])
    if merged is None:
        raise ResultsError("no results files given")
    if not allow_mixed and (len(set(fingerprints.values())) > 1 or None in fingerprints.values()):
        listed = ", ".join(f"{p} ({h or 'no fingerprint'})" for p, h in fingerprints.items())
        raise ResultsError(f"these results come from different machines or library versions: {listed}; "
                           "their timings cannot be merged into one run (--allow-mixed merges them anyway)")
    totals = {int(s.split("/")[1]) for s in shards_seen}
    expected_shards = {f"{k}/{n}" for n in totals for k in range(1, n + 1)}
    merged["cases"] = list(by_id.values())
    merged["claims"] = list(claims.values())
    merged["merge"] = {
        "duplicates": sorted(duplicates),
        "missing_cases": sorted(matrix_cases - set(by_id)),
        "missing_shards": sorted(expected_shards - shards_seen),
        "mixed_shard_counts": len(totals) > 1,
    }
    return merged
