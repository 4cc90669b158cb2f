"""End-to-end regression gate: ``pytest --matrix --baseline`` and ``resnetbench compare`` on real runs."""

from __future__ import annotations

import shutil

from conftest import by_id

from resnetbench.cli import main

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
input_size: 64
dataset: {name: synthetic, samples: 8}
latency: {warmup: 3, rounds: 40, pairs: 40}
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
