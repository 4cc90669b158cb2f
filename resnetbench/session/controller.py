"""The pytest-xdist controller's state: it runs no case and owns the results file.

Workers send the records and claims each test changed on its report (``worker.py``); the
controller writes them as they arrive, and turns a crashed worker's case into an ``error``
with the crash's reason while the rest of the run goes on (``isolation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from resnetbench.records import CaseRecord
from resnetbench.session import TEST_KINDS
from resnetbench.session.state import RunState


@dataclass
class ControllerState(RunState):
    role: ClassVar[str] = "controller"

    worker_cache: dict[str, tuple[int, int]] = field(default_factory=dict)  # per worker: hits, builds

    def receive(self, payload: dict[str, Any], finished: bool) -> None:
        """Take a worker's changes (``WorkerState.changes``) into the results."""
        for case_id, data in payload["records"].items():
            self.records[case_id] = CaseRecord.from_dict(data)
        self.claims.update(payload["claims"])
        self.worker_cache[str(payload["worker"])] = tuple(payload["cache"])  # type: ignore[assignment]
        if payload["records"] or payload["claims"]:
            self.write(finished)

    def cache_counts(self) -> tuple[int, int]:
        hits, builds = super().cache_counts()
        return (hits + sum(h for h, _ in self.worker_cache.values()),
                builds + sum(b for _, b in self.worker_cache.values()))


class Controller:
    """The controller's pytest hooks: the workers' reports and their crashes."""

    def __init__(self, state: ControllerState, config: pytest.Config) -> None:
        self.state = state
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "resnetbench", None)
        if payload is not None:
            self.state.receive(payload, finished=report.when == "teardown" or not report.passed)

    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """A worker died in ``crashitem``: its case becomes ``error`` with the reason; the rest goes on."""
        from resnetbench.isolation import crash_reason, worker_returncode

        node = getattr(report, "node", None)
        worker = getattr(getattr(node, "gateway", None), "id", "?")
        assert self.state.isolation_dir is not None
        why = crash_reason(self.state.isolation_dir, worker, worker_returncode(node))
        report.longrepr = f"crashed: {why['reason']} (worker {worker} was replaced)"
        abandoned = getattr(sched, "abandoned", [])
        sched.abandoned = []
        cases = {c.id: c for c in self.state.cases}
        for nodeid in [crashitem, *abandoned]:
            name, _, param = nodeid.partition("[")
            kind = TEST_KINDS.get(name.rsplit("::", 1)[-1])
            case = cases.get(param.removesuffix("]"))
            if kind is not None and case is not None:
                rec = self.state.record(case)
                rec.tests = {**(rec.tests or {}), kind: "error"}
                if nodeid == crashitem:
                    rec.reason = f"crashed in test_{kind}: {why['reason']}"
                    rec.note(f"crash ({why['kind']}) in test_{kind}: {why['reason']}")
            if nodeid != crashitem:
                skipped = pytest.TestReport(nodeid, (nodeid.split("::")[0], None, nodeid), {}, "failed",
                                            f"not run: {crashitem} crashed ({why['reason']})", "setup")
                self.config.hook.pytest_runtest_logreport(report=skipped)
        self.state.write()
