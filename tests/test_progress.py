"""Progress lines while the matrix runs (resnetbench/progress.py): each case's phases, the time
spent and an estimate of the time left, readable in a CI log; deselected tests explained."""

from __future__ import annotations

import re

from resnetbench.progress import Progress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_phase_lines_name_the_case_its_phase_and_an_estimate() -> None:
    clock, lines = FakeClock(), []
    progress = Progress(lines.append, {"a": 10.0, "b": 10.0, "c": 20.0}, clock)
    progress.phase("a", "build")
    progress.phase("a", "build")  # said once
    clock.now += 5
    progress.phase("a", "accuracy")
    clock.now += 15  # case a took 20 s for an expected 10: the run goes at twice the expected cost
    progress.phase("b", "build")
    assert lines[0] == "[resnetbench 1/3 · 0s elapsed · estimating] a: build"
    assert lines[1] == "[resnetbench 1/3 · 5s elapsed · estimating] a: accuracy"
    # left: c's 20 s and b's 10 s at twice the expected pace
    assert lines[2] == "[resnetbench 2/3 · 20s elapsed · ~1m00s left] b: build"
    clock.now += 8
    progress.phase("b", "timing")
    assert lines[3].endswith("~52s left] b: timing")  # b has spent 8 of its 20 expected seconds


def test_the_estimate_never_goes_negative_when_a_case_overruns() -> None:
    clock, lines = FakeClock(), []
    progress = Progress(lines.append, {"a": 1.0, "b": 1.0}, clock)
    progress.phase("a", "build")
    clock.now += 2
    progress.phase("b", "build")
    clock.now += 100
    progress.phase("b", "timing")
    assert lines[-1].endswith("~0s left] b: timing")


def test_durations_read_as_a_ci_log_reader_expects() -> None:
    assert [format_duration(s) for s in (0, 59.4, 61, 3599, 3600, 7322)] == ["0s", "59s", "1m01s", "59m59s",
                                                                              "1h00m", "2h02m"]


MATRIX = """
matrix:
  arch: [resnet18]
  backend: [eager]
  batch: [1, 2]
input_size: 32
dataset: {name: synthetic, samples: 4}
latency: {warmup: 1, rounds: 3, pairs: 4, blocks: 2}
tuning: {budget_s: 1}
claims: false
"""


def test_the_main_job_says_each_phase_and_the_time_left(run_matrix) -> None:
    result, data = run_matrix(MATRIX)
    assert result.ret == 0, result.stdout.str()[-3000:]
    out = result.stdout.str()
    for number, case in ((1, "resnet18-fp32-none-eager-b1"), (2, "resnet18-fp32-none-eager-b2")):
        for phase in ("build", "size", "accuracy", "timing"):
            assert re.search(rf"\[resnetbench {number}/2 · \d+\S* elapsed · (estimating|~\S+ left)\] {case}: {phase}$",
                             out, re.M), (case, phase, out[-3000:])
    # once the first case has finished, the second's lines carry an estimate of the time left
    assert re.search(r"\[resnetbench 2/2 · \S+ elapsed · ~\S+ left\] resnet18-fp32-none-eager-b2: build$", out, re.M), out
    assert re.search(r"\[resnetbench 1/2 · \S+ elapsed · estimating\] resnet18-fp32-none-eager-b1: build$", out, re.M)
    # the export and tuning phases show when the cache does not have them yet (the session cache
    # may: another test built the same artifact); the header says why tests were deselected
    assert "resnetbench: 2 deselected: test_deployment: the matrix has no deployment: section" in out
    assert "resnetbench: 2 deselected: test_scenarios: the matrix has no scenarios: section" in out
