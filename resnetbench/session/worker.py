"""A pytest-xdist worker's state: it runs cases and writes nothing itself.

Each test's report carries the records and claims the test changed (``changes``) to the
controller, which writes the results file and the journal (``controller.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from resnetbench.session.state import RunState


@dataclass
class WorkerState(RunState):
    role: ClassVar[str] = "worker"

    sent: dict[str, str] = field(default_factory=dict)  # what it last sent, per record/claim

    def write(self, finished: bool = True) -> None:
        """Nothing: the controller writes what this worker's reports carry."""

    def changes(self) -> dict[str, Any]:
        """The records and claims changed since the last call, as plain dicts, with this worker's cache counts."""
        return {**self._changed(self.sent), "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                "cache": [self.cache.hits, self.cache.misses]}

    def take_resumed(self, resumed: dict[str, Any]) -> None:
        """The finished tests, records and claims of a resumed run, as the controller sent them."""
        self.resumed = {tuple(t) for t in resumed["tests"]}  # type: ignore[misc]
        self.adopt(resumed["records"], resumed["claims"], self.sent)  # the controller has them
