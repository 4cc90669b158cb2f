"""End-to-end regression gate: ``pytest --matrix --baseline`` and ``resnetbench compare`` on real runs."""

from __future__ import annotations

import shutil

import pytest
from conftest import by_id

from resnetbench.cli import main

pytestmark = pytest.mark.timing  # every test here judges measured times (docs/testing.md)

SLOW_CONFTEST = '''
import os
import time

from resnetbench import build
from resnetbench.measure.latency_reference import REFERENCE_ORIGIN

FACTOR = float(os.environ.get("RB_INJECT_SLOWDOWN", "0"))


class Slowed:
    """The case's runner, FACTOR slower: busy-waits after each call (sleeping would free the core)."""

    def __init__(self, inner):
        self.inner = inner
        self.prepare, self.to_logits = inner.prepare, inner.to_logits

    def run(self, native):
        start = time.perf_counter()
        out = self.inner.run(native)
        end = time.perf_counter() + (time.perf_counter() - start) * FACTOR
        while time.perf_counter() < end:
            pass
        return out


if FACTOR:
    original = build.build_case

    def build_slowed_case(config, case, cache, threads, **kwargs):
        built = original(config, case, cache, threads, **kwargs)
        # The model under test gets slower; the latency reference (built from no matrix file) does not.
        if str(config.path) != REFERENCE_ORIGIN:
            built.runner = Slowed(built.runner)
        return built

    build.build_case = build_slowed_case
'''

MATRIX = """
matrix:
  arch: [resnet18]
  backend: [eager]
input_size: 32
dataset: {name: synthetic, samples: 8}
latency: {warmup: 3, rounds: 40, pairs: 40}
tuning: {enabled: false}  # the gate, not recipe choice, is under test (tests/test_tuning.py)
claims: false
"""


def test_baseline_gate_passes_identical_code_and_fails_a_slowdown(pytester, run_matrix, monkeypatch, capsys):
    pytester.makeconftest(SLOW_CONFTEST)
    result, data = run_matrix(MATRIX)
    assert result.ret == 0
    baseline = pytester.path / "baseline.json"
    shutil.copy(pytester.path / "results.json", baseline)

    result, data = run_matrix(MATRIX, "--baseline", str(baseline))
    gate = by_id(data)["resnet18-fp32-none-eager-b1"]["latency"]["gate"]
    # identical code never regresses; on a busy machine the gate may say it cannot decide,
    # and then it fails closed
    assert gate["decision"] in ("unchanged", "improved", "inconclusive"), gate["reason"]
    assert result.ret == (1 if gate["decision"] == "inconclusive" else 0)

    monkeypatch.setenv("RB_INJECT_SLOWDOWN", "0.5")
    result, data = run_matrix(MATRIX, "--baseline", str(baseline))
    gate = by_id(data)["resnet18-fp32-none-eager-b1"]["latency"]["gate"]
    # The estimate's accuracy is gate-check's job (many pairs); one pair on a shared CI
    # machine only has to be clearly slower and called so.
    assert gate["ratio"] > 1.3, gate["reason"]
    assert gate["decision"] == "regressed", gate["reason"]
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*latency regressed against the baseline*"])

    capsys.readouterr()
    assert main(["compare", str(baseline), str(pytester.path / "results.json")]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "resnet18-fp32-none-eager-b1" in out
    assert main(["compare", str(baseline), str(baseline)]) == 0
    assert main(["compare", str(baseline), str(pytester.path / "missing.json")]) == 2


@pytest.mark.slow
def test_latency_is_replicated_in_fresh_processes_and_the_gate_pools_them(pytester, run_matrix, monkeypatch, capsys):
    """latency.processes: the run re-times its latency cases in fresh processes; the gate resamples
    processes. A slowdown every process sees is caught; an unchanged run is not."""
    pytester.makeconftest(SLOW_CONFTEST)
    matrix = MATRIX.replace("latency: {warmup: 3, rounds: 40, pairs: 40}",
                            "latency: {warmup: 3, rounds: 20, pairs: 40, blocks: 8, processes: 2}")
    result, data = run_matrix(matrix, "-m", "latency")
    assert result.ret == 0, result.stdout.str()[-2000:]
    lat = by_id(data)["resnet18-fp32-none-eager-b1"]["latency"]
    assert lat["processes"] == 2 and len(lat["replicas"]) == 1
    # each process timed its share of the pairs
    assert len(lat["paired"]["reference_ms"]) == 20 and lat["paired"]["blocks"] == 4
    replica = lat["replicas"][0]
    assert len(replica["paired"]["case_ms"]) == 20 and replica["outcome"] == "passed"
    assert replica["paired"]["case_ms"] != lat["paired"]["case_ms"]  # timed again, not copied
    baseline = pytester.path / "baseline.json"
    shutil.copy(pytester.path / "results.json", baseline)

    monkeypatch.setenv("RB_INJECT_SLOWDOWN", "0.5")  # the replicas inherit it, as a pull request's code
    result, data = run_matrix(matrix, "-m", "latency", "--baseline", str(baseline))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*resnet18-fp32-none-eager-b1*regressed*", "*gate FAILED*"])
    capsys.readouterr()
    assert main(["compare", str(baseline), str(pytester.path / "results.json")]) == 1
    assert "regressed" in capsys.readouterr().out
    import json

    from resnetbench.compare import compare_results

    base, head = (json.loads(p.read_text()) for p in (baseline, pytester.path / "results.json"))
    case = by_id({"cases": compare_results(base, head)})["resnet18-fp32-none-eager-b1"]
    assert case["decision"] == "regressed" and case["latency"]["processes"] == [2, 2], case
    assert "resampled by process" in case["latency"]["unit"]
