"""The mutation catalogue: every kind of damage turns the gate red, an unchanged run stays green."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from resnetbench.records import BLOCKING, unstable_cases
from resnetbench.tools import mutations


def test_damaged_matrix_drops_one_case_and_adds_two():
    base = {(e["arch"], e["dtype"], e["backend"]) for e in mutations.MATRIX["matrix"]["include"]}
    damaged = {(e["arch"], e["dtype"], e["backend"]) for e in mutations.damaged_matrix()["matrix"]["include"]}
    assert base - damaged == {("resnet34", "bf16", "eager")}
    assert damaged - base == {("resnet18", "fp32", "torchscript"), ("resnet18", "fp16", "onnxruntime")}
    assert len({d.case for d in mutations.DAMAGES}) == len(mutations.DAMAGES)  # one damage per case
    assert {d.expected for d in mutations.DAMAGES} <= BLOCKING


def _fake_pytest(verdicts):
    """A stand-in for the ``pytest --matrix`` subprocess: writes one case per call with the next verdict."""
    calls = []

    def run(cmd, **kwargs):
        results = Path(cmd[cmd.index("--results") + 1])
        verdict = verdicts[min(len(calls), len(verdicts) - 1)]
        calls.append(verdict)
        stability = {"verdict": verdict, "reasons": ["interquartile range is 40% of the median"] if verdict == "unstable" else []}
        results.write_text(json.dumps({"cases": [{"id": "c1", "latency": {"stability": stability}}]}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return run, calls


@pytest.mark.parametrize(("verdicts", "runs", "left_unstable"), [
    (["stable"], 1, False),
    (["unstable", "retimed"], 2, False),
    (["unstable"], 1 + mutations.RERUNS, True),
])
def test_a_run_whose_timing_stayed_unstable_is_run_again_and_still_unstable_stays_so(
        tmp_path, monkeypatch, verdicts, runs, left_unstable):
    run, calls = _fake_pytest(verdicts)
    monkeypatch.setattr(mutations.subprocess, "run", run)
    monkeypatch.setattr(mutations, "RERUN_PAUSE_S", 0.0)
    reruns: list = []
    data = mutations._run("aa", mutations.MATRIX, tmp_path, tmp_path / "cache", [], reruns)
    assert len(calls) == runs and len(reruns) == runs - (not left_unstable)
    assert bool(unstable_cases(data["cases"])) == left_unstable
    assert all(r["run"] == "aa" and "40%" in r["unstable"]["c1"] for r in reruns)


def test_table_names_every_miss_with_its_reason():
    result = {"rows": [
        {"kind": "latency +15%", "case": "a", "expected": "regressed", "decision": "unstable", "red": True,
         "ok": False, "reason": "latency unstable in current"},
        {"kind": "A/A", "case": "b", "expected": "green", "decision": "unchanged", "red": False, "ok": True,
         "reason": ""},
    ], "aa_gate_passed": True, "collateral": [], "reruns": []}
    table = mutations.format_table(result)
    assert "NO: latency +15% on a: latency unstable in current" in table
    assert "damages caught (the expected decision): 0/1" in table


@pytest.mark.timing
@pytest.mark.slow
def test_every_damage_turns_the_gate_red_and_aa_stays_green(tmp_path, shared_cache):
    result = mutations.run_catalogue(tmp_path, shared_cache)
    table = mutations.format_table(result)
    damages = [r for r in result["rows"] if r["kind"] != "A/A"]
    assert {r["kind"] for r in damages} == {d.kind for d in mutations.DAMAGES}
    assert all(r["decision"] == r["expected"] for r in damages), table
    aa = [r for r in result["rows"] if r["kind"] == "A/A"]
    assert len(aa) == len(mutations.MATRIX["matrix"]["include"]) and not any(r["red"] for r in aa), table
    assert result["aa_gate_passed"] and not result["collateral"] and result["all_ok"], table
