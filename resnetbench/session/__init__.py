"""The state of one ``pytest --matrix`` session, by role (``state.py``: serial, ``worker.py``,
``controller.py``), the xdist scheduler that keeps a case's tests together (``scheduling.py``)
and the latency replicas (``replicas.py``). ``resnetbench.plugin`` holds the pytest hooks."""

from __future__ import annotations

# The suite's per-case tests (resnetbench/suite/test_resnets.py) and the kind each records.
TEST_KINDS = {"test_size": "size", "test_accuracy": "accuracy", "test_latency": "latency",
              "test_deployment": "deployment", "test_scenarios": "scenarios"}


def case_scope(nodeid: str) -> str:
    """The unit of xdist scheduling: the case id for a case's tests, else the test itself."""
    name, bracket, param = nodeid.partition("[")
    return param.removesuffix("]") if bracket and name.rsplit("::", 1)[-1] in TEST_KINDS else nodeid
