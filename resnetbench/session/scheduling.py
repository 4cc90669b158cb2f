"""pytest-xdist scheduling by case: a case's tests run on one worker, so they share one build."""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

from resnetbench.session import case_scope


class CaseScheduling(LoadScopeScheduling):
    """Schedules by case: ``test_size[ID]``, ``test_accuracy[ID]`` and ``test_latency[ID]`` go together.

    xdist's default ``--dist load`` would scatter a case's tests over workers, each building
    it. (xdist's ``xdist_group`` mark would do this, but xdist 3.8 rewrites ``item._nodeid``,
    which pytest 9.2 no longer reads.)
    """

    abandoned: list[str]

    def _split_scope(self, nodeid: str) -> str:
        return case_scope(nodeid)

    def remove_node(self, node: Any) -> str | None:
        """A crashed worker: requeue its other cases, but not the crashed one (isolation.py).

        xdist would requeue the crashed test itself, which would crash the next worker.
        """
        workload = self.assigned_work.pop(node)
        pending = [(scope, nodeid) for scope, unit in workload.items() for nodeid, done in unit.items()
                   if not done]
        if not pending:
            return None
        crash_scope, crashitem = pending[0]
        self.abandoned = [nodeid for scope, nodeid in pending[1:] if scope == crash_scope]
        self.workqueue.update({scope: unit for scope, unit in workload.items()
                               if scope != crash_scope and not all(unit.values())})
        for other in self.assigned_work:
            self._reschedule(other)
        return crashitem
