"""The results journal: every finished test, one JSON line, so a killed run loses nothing.

The results file is rewritten atomically after each test (a reader always sees a whole
file), but a ``kill -9`` leaves the run to start over. Beside it, ``<results>.jsonl``
gets one line per finished test (the records and claims that test changed), flushed and
fsynced before the next test starts. Its first line says which matrix, shard and
machine wrote it; ``--resume`` refuses a journal written for anything else, rebuilds
the finished records from it and runs only what is missing.

A line cut short by the kill is dropped on reading, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

JOURNAL_VERSION = 1


class JournalError(Exception):
    """A journal that cannot be resumed; the message says why and what to do."""


def journal_path(results_path: Path) -> Path:
    return results_path.with_name(results_path.name.removesuffix(".json") + ".jsonl")


def matrix_digest(matrix_path: Path, shard: str | None) -> str:
    """What the run's cases depend on: the matrix file's bytes and the shard."""
    digest = hashlib.sha256(Path(matrix_path).read_bytes())
    digest.update(f"shard={shard}".encode())
    return digest.hexdigest()[:16]


@dataclass
class Resumed:
    """What a journal says was finished."""

    header: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # case id -> its last record
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def finished_tests(self) -> set[tuple[str, str]]:
        """(case id, test kind) of every test with a final outcome in the journal."""
        return {(case_id, kind) for case_id, rec in self.records.items() for kind in (rec.get("tests") or {})}


def read(path: Path) -> Resumed:
    """Parse a journal; a torn last line is dropped with a warning, a torn middle is an error."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        raise JournalError(f"{path}: no journal to resume from (run without --resume to start)") from None
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from None
    complete = lines[-1] == b""  # every whole line ends with a newline
    lines = lines[:-1] if complete else lines
    entries: list[dict[str, Any]] = []
    warnings: list[str] = []
    for number, raw in enumerate(lines, 1):
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            if number == len(lines):  # the line the kill cut short
                warnings.append(f"{path}:{number}: dropped a truncated last line ({len(raw)} bytes)")
                break
            raise JournalError(f"{path}:{number}: not a journal line (corrupt in the middle; "
                               "run without --resume to start over)") from None
        entries.append(entry)
    if not entries or entries[0].get("journal") != JOURNAL_VERSION:
        raise JournalError(f"{path}: not a resnetbench journal of version {JOURNAL_VERSION}")
    resumed = Resumed(header=entries[0], warnings=warnings)
    for entry in entries[1:]:
        if "case" in entry:
            resumed.records[entry["case"]["id"]] = entry["case"]
        elif "claim" in entry:
            resumed.claims[entry["claim"]["id"]] = entry["claim"]
    return resumed


def check_resumable(resumed: Resumed, path: Path, header: dict[str, Any]) -> None:
    """Refuse a journal written for another matrix, shard or machine/library set."""
    mine = resumed.header
    for key, what in (("matrix", "matrix file or shard"), ("fingerprint", "machine, library versions or threads")):
        if mine.get(key) != header.get(key):
            raise JournalError(f"{path}: written for another {what} ({key} {mine.get(key)} here is "
                               f"{header.get(key)}); run without --resume to start over")


class Journal:
    """Appends lines; each ``append`` is on disk (fsynced) when it returns."""

    def __init__(self, path: Path, header: dict[str, Any], resume: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume:
            self._drop_torn_tail(path)
        self._fh: IO[bytes] = open(path, "ab" if resume else "wb")  # noqa: SIM115
        if not resume:
            self._write({"journal": JOURNAL_VERSION, **header})

    @staticmethod
    def _drop_torn_tail(path: Path) -> None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def _write(self, entry: dict[str, Any]) -> None:
        self._fh.write(json.dumps(entry, sort_keys=True, default=str).encode() + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, records: dict[str, dict[str, Any]], claims: dict[str, dict[str, Any]]) -> None:
        for record in records.values():
            self._write({"case": record})
        for claim in claims.values():
            self._write({"claim": claim})

    def close(self) -> None:
        self._fh.close()
