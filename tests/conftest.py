"""Shared fixtures: pytester for end-to-end runs, one artifact cache for the whole test session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# pytester restores sys.modules after each test, and numpy's C extensions (numpy.fft via
# scipy.stats) cannot load twice in one process: import what in-process `main([...])`
# calls use before any test runs.
import scipy.stats  # noqa: F401  (the gate's rank test imports it lazily, inside a test)

import resnetbench.compare  # noqa: F401
import resnetbench.report  # noqa: F401

pytest_plugins = ["pytester"]

# pytester gives every run its own HOME, so each would make its own cache key under
# ~/.config and find the shared cache's entries signed by another key (rebuilt, with a note).
# One key for the whole test session, as CI passes one secret; tests of the key unset it.
os.environ.setdefault("RESNETBENCH_CACHE_KEY", "resnetbench-test-session")


def pytest_configure(config: pytest.Config) -> None:
    # One latency process per run unless a test's matrix says otherwise: the end-to-end runs check
    # the flow, and replicas (latency.processes, default 3) would triple every timed run's cost.
    # Not for `pytest --matrix` itself, which loads this file too when run from the repository.
    if not config.getoption("matrix", None):
        os.environ.setdefault("RESNETBENCH_LATENCY_PROCESSES", "1")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for all end-to-end runs (exports and trained weights are made once)."""
    return tmp_path_factory.mktemp("resnetbench-cache")


@pytest.fixture
def run_matrix(pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a matrix file and run ``pytest --matrix`` on it in a subprocess."""
    monkeypatch.setenv("RESNETBENCH_CACHE", str(shared_cache))

    def run(matrix: str, *args: str, name: str = "m.yaml",
            timeout: float | None = None) -> tuple[pytest.RunResult, dict[str, Any] | None]:
        path = pytester.path / name
        path.write_text(matrix)
        results = pytester.path / "results.json"
        result = pytester.runpytest_subprocess(
            "--matrix", str(path), "--results", str(results), "-p", "no:cacheprovider", *args, timeout=timeout
        )
        data = json.loads(results.read_text()) if results.exists() else None
        return result, data

    return run


def by_id(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in data["cases"]}
