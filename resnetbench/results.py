"""Results file: the one JSON shape that report, compare and merge read.

Never imports torch: reporting and gating run on machines without it.

Layout (``schema_version`` 1)::

    {
      "schema_version": 1,
      "environment": {...},          # fingerprint, libraries, threads, calibration, peak
      "matrix_file": "matrix.yaml",
      "started": "2026-11-29T03:00:00+00:00",
      "finished": "...",
      "cases": [ {case record}, ... ],
      "claims": [ {claim record}, ... ]
    }

A case record has ``id, arch, dtype, compression, backend, batch, outcome, reason``,
``tests`` (outcome per measurement: size/accuracy/latency) and the optional
sub-objects ``size``, ``accuracy``, ``latency``, ``conversion``, ``notes``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "error")
CASE_KEYS = ("id", "arch", "dtype", "compression", "backend", "batch", "outcome")


class ResultsError(ValueError):
    """A results file that cannot be read or does not have the expected shape."""


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


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a results file; raises ResultsError with the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or "cases" not in data:
        raise ResultsError(f"{path}: not a resnetbench results file (no 'cases' list)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{path}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
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
                f"{path}: cases[{i}] ({case['id']}) has outcome {case['outcome']!r};"
                f" allowed: {', '.join(OUTCOMES)}"
            )
    return data


def merge(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
    """Merge shard results into one; a case id present twice keeps the last and is noted."""
    merged: dict[str, Any] | None = None
    by_id: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = load(path)
        if merged is None:
            merged = {k: v for k, v in data.items() if k not in ("cases", "claims")}
            merged["shards"] = []
        merged["shards"].append(str(path))
        for case in data["cases"]:
            by_id[case["id"]] = case
        for claim in data.get("claims", []):
            claims[claim["id"]] = claim
    if merged is None:
        raise ResultsError("no results files given")
    merged["cases"] = list(by_id.values())
    merged["claims"] = list(claims.values())
    return merged
