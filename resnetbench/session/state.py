"""What one ``pytest --matrix`` session shares, in a serial run (the base of the other roles).

A run has one of three roles:

- serial (this module's ``RunState``): it runs the cases and writes the results file and the
  journal itself;
- worker (``worker.py``): a pytest-xdist worker runs cases and sends what each test changed to
  the controller on the test's report;
- controller (``controller.py``): it runs no case; it writes what the workers' reports carry.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from resnetbench import journal as journal_io
from resnetbench import results as results_io
from resnetbench.config import Config
from resnetbench.records import CaseRecord


@dataclass
class RunState:
    """Everything one ``--matrix`` session shares; lives in ``config.stash``."""

    role: ClassVar[str] = "serial"

    config: Config
    cases: list[Any]
    results_path: Path
    threads: int
    cache: Any
    environment: dict[str, Any] = field(default_factory=dict)
    records: dict[str, CaseRecord] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)
    started: str = ""
    baseline: dict[str, Any] | None = None
    fresh_outputs: bool = False  # --fresh-outputs: never reuse a case's cached outputs
    shard: tuple[int, int] | None = None  # (K, N) of --shard
    matrix_case_ids: list[str] = field(default_factory=list)  # every case of the unsharded matrix
    journal: journal_io.Journal | None = None  # serial/controller: every finished test, fsynced
    journaled: dict[str, str] = field(default_factory=dict)  # what the journal last got, per record/claim
    resumed: set[tuple[str, str]] = field(default_factory=set)  # --resume: (case id or "claim", kind/claim id)
    replica: bool = False  # --latency-replica: re-times another run's latency cases, nothing more
    progress: Any = None  # serial runs: a progress.Progress that prints each case's phases
    guard: Any = None  # a worker's isolation.WorkerGuard (None in the other roles)
    isolation_dir: Path | None = None  # under xdist: where workers' watchdogs and faulthandlers write

    def phase(self, case: Any, name: str) -> None:
        """Say that ``case`` starts phase ``name`` (nothing where no progress is shown)."""
        if self.progress is not None:
            self.progress.phase(case.id, name)

    @property
    def runs_claims(self) -> bool:
        """The claims run once per matrix: in shard 1 of a sharded run."""
        return self.config.claims and (self.shard is None or self.shard[0] == 1)

    def gate_threshold(self) -> float:
        """The matrix's gate threshold (``gate.threshold``, 10% by default)."""
        return float(self.config.gate.threshold)

    def baseline_case(self, case_id: str) -> dict[str, Any] | None:
        """The baseline's record of a case, if a baseline was given and has it."""
        if self.baseline is None:
            return None
        return next((c for c in self.baseline["cases"] if c["id"] == case_id), None)

    def record(self, case: Any) -> CaseRecord:
        """The results record of a case (created on first use)."""
        if case.id not in self.records:
            self.records[case.id] = CaseRecord(
                **case.axes(),
                id=case.id,
                outcome="skipped",
                reason="",
                input_size=self.config.input_size,
                tests={},
                tolerances=case.tolerances,
                settings=case.settings,
                notes=[],
            )
        return self.records[case.id]

    def results(self) -> dict[str, Any]:
        for rec in self.records.values():
            rec.outcome = results_io.combine_outcomes((rec.tests or {}).values())
        order = {c.id: i for i, c in enumerate(self.cases)}  # matrix order, resumed records included
        sharded = {"shard": f"{self.shard[0]}/{self.shard[1]}", "matrix_cases": self.matrix_case_ids} if self.shard else {}
        return {
            "schema_version": results_io.SCHEMA_VERSION,
            "matrix_file": str(self.config.path),
            **sharded,
            "started": self.started,
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "environment": self.environment,
            # the matrix's gate settings: compare reads its allowances from the current run
            "gate": self.config.gate.to_dict(),
            "cases": [rec.to_dict() for rec in sorted(self.records.values(), key=lambda r: order.get(r.id, len(order)))],
            "claims": list(self.claims.values()),
        }

    def write(self, finished: bool = True) -> None:
        """Rewrite the results file; ``finished``: a test ended, so journal what it changed."""
        if finished and self.journal is not None:
            changed = self._changed(self.journaled)
            self.journal.append(changed["records"], changed["claims"])
        results_io.write_atomic(self.results_path, self.results())

    def adopt(self, records: dict[str, dict[str, Any]], claims: dict[str, dict[str, Any]], last: dict[str, str]) -> None:
        """Take records and claims a killed run finished (``--resume``); ``last`` already has them."""
        ids = {c.id for c in self.cases}
        for case_id, data in records.items():
            if case_id in ids:
                self.records[case_id] = CaseRecord.from_dict(data)
        self.claims.update(claims)
        self._changed(last)

    def _changed(self, last: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The records and claims that differ from ``last`` (updated), as plain dicts."""
        out: dict[str, dict[str, Any]] = {"records": {}, "claims": {}}
        for part, items in (("records", {k: r.to_dict() for k, r in self.records.items()}), ("claims", self.claims)):
            for key, value in items.items():
                text = json.dumps(value, sort_keys=True, default=str)
                if last.get(f"{part}:{key}") != text:
                    last[f"{part}:{key}"] = text
                    out[part][key] = json.loads(text)
        return out

    def cache_counts(self) -> tuple[int, int]:
        """(hits, builds) of the artifact cache in this run (the controller adds its workers')."""
        return self.cache.hits, self.cache.misses
