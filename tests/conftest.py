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


DURATIONS = Path(__file__).with_name("durations.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnetbench-tests", "resnetbench's own test suite")
    group.addoption("--test-shard", metavar="K/N", default=None,
                    help="run shard K of N of the selected tests, balanced on the durations in tests/durations.json "
                         "(CI's slow-tier jobs)")
    group.addoption("--store-test-durations", metavar="PATH", default=None,
                    help="write each test's duration (setup + call + teardown, seconds) to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    # One latency process per run unless a test's matrix says otherwise: the end-to-end runs check
    # the flow, and replicas (latency.processes, default 3) would triple every timed run's cost.
    # Not for `pytest --matrix` itself, which loads this file too when run from the repository.
    if not config.getoption("matrix", None):
        os.environ.setdefault("RESNETBENCH_LATENCY_PROCESSES", "1")
        _one_cpu_per_worker(config)
    store = config.getoption("store_test_durations", None)
    if store and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(Path(store)), "resnetbench-test-durations")


def _stored_costs(items: list[pytest.Item]) -> dict[str, float]:
    """Each test's stored duration (tests/durations.json); the median of the stored ones when it has none."""
    stored = json.loads(DURATIONS.read_text(encoding="utf-8")) if DURATIONS.exists() else {}
    typical = sorted(stored.values())[len(stored) // 2] if stored else 1.0
    return {item.nodeid: stored.get(item.nodeid, typical) for item in items}


def heaviest_files_first(items: list[pytest.Item], cost: dict[str, float]) -> list[pytest.Item]:
    """The items with their files ordered by stored cost, most expensive first, each file's own
    order kept. pytest-xdist's ``--dist loadfile`` hands out files in collection order (with
    ``--no-loadscope-reorder``; its default orders them by test count, which hands the files of
    a few long end-to-end tests out last): the longest-first order is the classic greedy
    schedule that keeps the tail short. Its own gain was not measured apart from the pinning's."""
    per_file: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        per_file[path] = per_file.get(path, 0.0) + cost[item.nodeid]
    return sorted(items, key=lambda item: -per_file[item.nodeid.split("::", 1)[0]])  # stable: keeps each file's order


def _one_cpu_per_worker(config: pytest.Config) -> None:
    """Under pytest-xdist with as many workers as CPUs, each worker (and every process it starts)
    keeps to a CPU of its own, so the runs it starts take one thread (``default_threads`` honours
    the affinity). Two workers whose runs took 2 threads each on 2 CPUs spent their time taking
    turns: two ResNet-18 processes served 1806 calls in 8 s at 2 threads each, 2923 at 1 each."""
    worker = getattr(config, "workerinput", None)
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if int(worker["workercount"]) != len(cpus):
        return
    os.sched_setaffinity(0, {cpus[int(worker["workerid"].removeprefix("gw")) % len(cpus)]})
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--test-shard K/N``: keeps shard K's tests. Each test costs its
    stored duration (the median of the stored ones when it has none); shards are dealt most
    expensive first, each test to the least loaded shard (resnetbench.shard.assign, the matrix's
    own balancing). Under pytest-xdist the files run heaviest first (``heaviest_files_first``)."""
    if config.getoption("matrix", None):
        return
    if getattr(config.option, "dist", "no") != "no" or hasattr(config, "workerinput"):
        items[:] = heaviest_files_first(items, _stored_costs(items))
    text = config.getoption("test_shard")
    if not text:
        return
    from resnetbench.shard import assign, parse_shard

    try:
        k, n = parse_shard(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--test-shard: {exc}") from None
    shard_of = assign(_stored_costs(items), n)
    keep = [item for item in items if shard_of[item.nodeid] == k - 1]
    config.hook.pytest_deselected(items=[item for item in items if shard_of[item.nodeid] != k - 1])
    items[:] = keep


class DurationRecorder:
    """``--store-test-durations``: each test's seconds (setup + call + teardown), from the reports the
    main process sees (pytest-xdist's controller gets its workers')."""

    def __init__(self, path: Path) -> None:
        self.path, self.durations = path, {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = round(self.durations.get(report.nodeid, 0.0) + report.duration, 3)

    def pytest_sessionfinish(self) -> None:
        self.path.write_text(json.dumps(dict(sorted(self.durations.items())), indent=0) + "\n", encoding="utf-8")


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
