"""The stability verdict of a timing, from its own samples and reference calls."""

from __future__ import annotations

import numpy as np

from resnetbench.measure.stability import LIMITS, assess, recheck_run

rng = np.random.default_rng(0)


def quiet(n: int = 40, median: float = 10.0) -> list[float]:
    return list(median * (1 + 0.02 * rng.standard_normal(n)).clip(0.95, None))


def test_quiet_timing_is_stable():
    r = assess(quiet(20), quiet(40, 30.0), run_reference_best_ms=29.5)
    assert r["verdict"] == "stable" and r["reasons"] == []


def test_a_busy_machine_is_unstable_for_each_reason():
    busy = quiet(20)
    busy[::2] = [v * 3 for v in busy[::2]]  # half the calls three times slower
    assert any("fastest call" in m for m in assess(busy)["reasons"])
    drifting = quiet(40, 30.0)[:20] + quiet(20, 45.0)
    assert any("moved 1.5" in m for m in assess(quiet(20), drifting)["reasons"])
    assert any("busy machine" in m for m in assess(quiet(20), quiet(40, 60.0), run_reference_best_ms=30.0)["reasons"])


def test_each_limit_is_a_boundary():
    """Just inside a limit is stable, just outside it is not (the rule, not the constant)."""
    def with_min(ratio: float) -> list[float]:
        return [10.0] * 19 + [10.0 * ratio]

    assert assess(with_min(LIMITS["min_over_median"] + 0.02))["verdict"] == "stable"
    assert assess(with_min(LIMITS["min_over_median"] - 0.02))["verdict"] == "unstable"
    ref = [10.0] * 8
    inside = ref + [10.0 * (LIMITS["reference_drift"] - 0.02)] * 8
    outside = ref + [10.0 * (LIMITS["reference_drift"] + 0.02)] * 8
    assert assess([10.0] * 20, inside)["verdict"] == "stable"
    assert assess([10.0] * 20, outside)["verdict"] == "unstable"
    vs_run = 10.0 / LIMITS["reference_vs_run"]
    assert assess([10.0] * 20, [10.0] * 16, run_reference_best_ms=vs_run * 1.02)["verdict"] == "stable"
    assert assess([10.0] * 20, [10.0] * 16, run_reference_best_ms=vs_run * 0.98)["verdict"] == "unstable"
    paired = 10.0 / LIMITS["plain_vs_paired"]
    assert assess([10.0] * 20, paired_case_ms=[paired * 1.02] * 16)["verdict"] == "stable"
    assert assess([10.0] * 20, paired_case_ms=[paired * 0.98] * 16)["verdict"] == "unstable"


def test_a_steady_plain_loop_on_a_slow_machine_is_caught_by_its_own_paired_calls():
    """The edge run's case: a steady 35.7 ms plain loop (IQR 0.6%), paired calls at 18.9 ms."""
    plain = [35.4, 35.5, 35.6, 35.6, 35.7, 35.7, 35.7, 35.8, 35.9, 37.4] * 2
    r = assess(plain, [18.9] * 40, paired_case_ms=[18.9] * 40)
    assert r["verdict"] == "unstable" and any("plain loop" in m for m in r["reasons"]), r
    # the same plain loop when the paired calls agree with it (slower by cache disturbance, as usual)
    assert assess(plain, [18.9] * 40, paired_case_ms=[38.0] * 40)["verdict"] == "stable"


def test_recheck_marks_a_case_timed_before_the_machine_was_seen_quiet():
    def lat(ref_ms: float) -> dict:
        return {"paired": {"reference_key": "eager/fp32/none/b1/64", "reference_ms": quiet(16, ref_ms)},
                "stability": {"verdict": "stable", "reasons": []}}

    early, later, other = lat(80.0), lat(30.0), lat(31.0)
    marked = recheck_run([early, later, other])
    assert marked == [early] and early["stability"]["verdict"] == "unstable"
    assert "found after the run" in early["stability"]["reasons"][0]
    assert later["stability"]["verdict"] == other["stability"]["verdict"] == "stable"
