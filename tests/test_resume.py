"""The journal and --resume: a run killed at any point loses no finished test and re-times none."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnetbench import journal as journal_io
from resnetbench.results import load as load_results

HEADER = {"matrix": "m1", "fingerprint": "f1", "started": "2026-12-03T00:00:00+00:00"}


def _journal(path: Path, *entries: dict) -> None:
    j = journal_io.Journal(path, HEADER, resume=False)
    for entry in entries:
        j.append(*entry["append"])
    j.close()


def _record(case_id: str, **tests: str) -> dict:
    return {"id": case_id, "tests": tests}


def test_the_last_record_of_a_case_wins_and_its_finished_tests_are_known(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, {"append": ({"a": _record("a", size="passed")}, {})},
             {"append": ({"a": _record("a", size="passed", accuracy="failed"), "b": _record("b", size="skipped")},
                         {"C1": {"id": "C1", "verdict": "holds"}})})
    resumed = journal_io.read(path)
    assert resumed.records["a"]["tests"] == {"size": "passed", "accuracy": "failed"}
    assert resumed.finished_tests() == {("a", "size"), ("a", "accuracy"), ("b", "size")}
    assert set(resumed.claims) == {"C1"} and resumed.warnings == []


def test_a_torn_last_line_is_dropped_with_a_warning_and_cut_off_before_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, {"append": ({"a": _record("a", size="passed")}, {})})
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"case": {"id": "b", "tes')
    resumed = journal_io.read(path)
    assert set(resumed.records) == {"a"}
    assert len(resumed.warnings) == 1 and "truncated last line" in resumed.warnings[0]
    j = journal_io.Journal(path, HEADER, resume=True)
    j.append({"c": _record("c", size="passed")}, {})
    j.close()
    assert set(journal_io.read(path).records) == {"a", "c"} and journal_io.read(path).warnings == []


def test_a_corrupt_middle_a_foreign_file_and_a_missing_journal_are_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path, {"append": ({"a": _record("a", size="passed")}, {})},
             {"append": ({"b": _record("b", size="passed")}, {})})
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"garbage", *lines[2:]]))
    with pytest.raises(journal_io.JournalError, match=r"r.jsonl:2: not a journal line"):
        journal_io.read(path)
    path.write_text('{"cases": []}\n')
    with pytest.raises(journal_io.JournalError, match="not a resnetbench journal"):
        journal_io.read(path)
    with pytest.raises(journal_io.JournalError, match="no journal to resume from"):
        journal_io.read(tmp_path / "absent.jsonl")


def test_a_journal_of_another_matrix_or_machine_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    _journal(path)
    resumed = journal_io.read(path)
    journal_io.check_resumable(resumed, path, HEADER)
    with pytest.raises(journal_io.JournalError, match="another matrix file or shard"):
        journal_io.check_resumable(resumed, path, {**HEADER, "matrix": "m2"})
    with pytest.raises(journal_io.JournalError, match="another machine, library versions or threads"):
        journal_io.check_resumable(resumed, path, {**HEADER, "fingerprint": "f2"})


MATRIX = """
matrix:
  arch: [resnet18]
  dtype: [fp32]
  compression: [none]
  backend: [eager, onnxruntime, openvino, torchscript]
  batch: [1]
  include:
    - {arch: resnet18, dtype: bf16, compression: none, backend: eager}
input_size: 32
dataset: {name: synthetic, samples: 8}
latency: {warmup: 1, rounds: 4, pairs: 6, blocks: 3}
claims: false
"""
# Logs each test's start and end (after its teardown report, so after the journal line).
TRACER = """
import os

def _log(event, nodeid):
    with open(os.environ["TRACE_FILE"], "a") as fh:
        fh.write(f"{os.getpid()} {event} {nodeid}\\n")
        fh.flush()
        os.fsync(fh.fileno())

def pytest_runtest_logstart(nodeid, location):
    _log("start", nodeid)

def pytest_runtest_logfinish(nodeid, location):
    _log("finish", nodeid)
"""


def _runs(trace: Path) -> list[dict[str, set[str]]]:
    """Per run (pid, in order): the tests it started and the tests it finished."""
    runs: dict[str, dict[str, set[str]]] = {}
    for line in trace.read_text().splitlines():
        pid, event, nodeid = line.split(" ", 2)
        runs.setdefault(pid, {"start": set(), "finish": set()})[event].add(nodeid)
    return list(runs.values())


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_loses_nothing_and_reruns_nothing_finished(pytester, shared_cache):
    kills = int(os.environ.get("RESNETBENCH_KILLS", "4"))
    (pytester.path / "tracer.py").write_text(TRACER)
    matrix = pytester.path / "m.yaml"
    matrix.write_text(MATRIX)
    results = pytester.path / "results.json"
    journal = journal_io.journal_path(results)
    env = {**os.environ, "TRACE_FILE": str(pytester.path / "trace.txt"), "RESNETBENCH_CACHE": str(shared_cache),
           "PYTHONPATH": str(pytester.path)}
    cmd = [sys.executable, "-m", "pytest", "--matrix", str(matrix), "--results", str(results),
           "-p", "no:cacheprovider", "-p", "tracer", "-q"]
    rng = random.Random(20261203)
    for _ in range(kills):
        proc = subprocess.Popen(cmd + (["--resume"] if journal.exists() else []), cwd=pytester.path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(4, 16))
        proc.kill()
        _, err = proc.communicate()
        assert "Traceback" not in err, err[-2000:]
        if results.exists():
            load_results(results)  # the atomically rewritten file always parses
    final = subprocess.run(cmd + (["--resume"] if journal.exists() else []), cwd=pytester.path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-2000:]
    data = json.loads(results.read_text())
    assert len(data["cases"]) == 5
    for case in data["cases"]:
        assert case["tests"] == {"size": "passed", "accuracy": "passed", "latency": "passed"}, case["id"]
        assert case["latency"]["median_ms"] > 0
    runs = _runs(pytester.path / "trace.txt")
    for i, run in enumerate(runs):
        for later in runs[i + 1:]:
            # a test finished before a kill is never started again: not rebuilt, not re-timed
            assert not run["finish"] & later["start"], sorted(run["finish"] & later["start"])
    # every test finished once (a kill between the journal line and the tracer's line can hide one)
    assert 14 <= sum(len(r["finish"]) for r in runs) <= 15


def test_resume_of_another_matrix_is_a_clear_refusal(pytester, shared_cache, monkeypatch):
    monkeypatch.setenv("RESNETBENCH_CACHE", str(shared_cache))
    matrix = pytester.path / "m.yaml"
    matrix.write_text("matrix:\n  arch: [resnet18]\n  backend: [eager]\ninput_size: 32\nclaims: false\n")
    results = pytester.path / "results.json"
    journal = journal_io.journal_path(results)
    journal_io.Journal(journal, {"matrix": "someone-else", "fingerprint": "x", "started": "s"}, resume=False).close()
    result = pytester.runpytest_subprocess("--matrix", str(matrix), "--results", str(results), "--resume",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--resume:" in err and "another matrix file or shard" in err and "Traceback" not in err
    assert not results.exists()  # nothing written, nothing lost


@pytest.mark.parametrize("option", ["--results", "--report", "--summary"])
def test_an_output_path_that_is_a_directory_is_refused_before_running(pytester, option):
    matrix = pytester.path / "m.yaml"
    matrix.write_text("matrix:\n  arch: [resnet18]\n  backend: [eager]\ninput_size: 32\nclaims: false\n")
    (pytester.path / "outdir").mkdir()
    args = ["--results", str(pytester.path / "r.json")] if option != "--results" else []
    result = pytester.runpytest_subprocess("--matrix", str(matrix), *args, option, str(pytester.path / "outdir"),
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"{option} " in err and "is a directory" in err and "Traceback" not in err
    assert not (pytester.path / "r.json").exists()


@pytest.mark.slow
def test_resuming_a_finished_run_runs_nothing_and_passes(pytester, shared_cache, monkeypatch):
    monkeypatch.setenv("RESNETBENCH_CACHE", str(shared_cache))
    matrix = pytester.path / "m.yaml"
    matrix.write_text("matrix:\n  arch: [resnet18]\n  backend: [eager]\ninput_size: 32\n"
                      "latency: {warmup: 1, rounds: 3, pairs: 4, blocks: 2}\nclaims: false\n")
    results = pytester.path / "results.json"
    args = ("--matrix", str(matrix), "--results", str(results), "-p", "no:cacheprovider")
    assert pytester.runpytest_subprocess(*args).ret == 0
    again = pytester.runpytest_subprocess(*args, "--resume")
    assert again.ret == 0, again.stdout.str()[-2000:]
    # the case's 3 tests, the (claims: false) claim test, the (no deployment:) deployment test
    # and the (no scenarios:) scenarios test
    assert "6 deselected" in again.stdout.str()
    assert json.loads(results.read_text())["cases"][0]["outcome"] == "passed"
