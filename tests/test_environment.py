"""The machine facts runs are keyed and threaded by (environment.py)."""

from __future__ import annotations

import os

import pytest

from resnetbench import environment


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is a Linux call")
@pytest.mark.parametrize("allowed,cores,expected", [({0}, 2, 1), ({0, 1}, 2, 2), ({0, 1, 2, 3}, 2, 2), ({3}, 8, 1)])
def test_default_threads_are_the_physical_cores_the_process_may_run_on(monkeypatch, allowed, cores, expected):
    monkeypatch.setattr(environment.os, "sched_getaffinity", lambda pid: allowed)
    monkeypatch.setattr(environment, "cpu_info", lambda: {"cores_physical": cores})
    assert environment.default_threads() == expected


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux call")
def test_a_process_pinned_to_one_cpu_runs_one_thread():
    import subprocess
    import sys

    cpu = min(os.sched_getaffinity(0))
    code = (f"import os; os.sched_setaffinity(0, {{{cpu}}}); from resnetbench.environment import default_threads; "
            "print(default_threads())")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1"
