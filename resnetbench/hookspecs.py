"""Hooks of the resnetbench pytest plugin, for plugins that add their own figures to each case.

Implement them in a ``conftest.py`` or a plugin module (``-p mymetrics``), as
pytest-benchmark's hooks are implemented::

    def pytest_resnetbench_case_record(case, record, built):
        # e.g. the artifact's largest file, kept in the results file under the case
        record.extra["largest_file_bytes"] = max(built.files.values())
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_resnetbench_case_record(case: Any, record: Any, built: Any) -> None:
    """Called once per built case, after its size, accuracy and latency tests ran.

    ``case`` is the ``matrix.Case``; ``record`` the ``records.CaseRecord`` that goes to the
    results file (add JSON-serialisable values to ``record.extra``; they round-trip
    through ``resnetbench merge``, ``report`` and ``compare``); ``built`` the
    ``build.Built`` case (model, artifact files, runner). Skipped cases are not built
    and get no call.
    """
