"""The stability verdict of a timing, from its own samples and reference calls."""

from __future__ import annotations

import numpy as np
import pytest

from resnetbench.measure.stability import LIMITS, assess, cause, recheck_run

rng = np.random.default_rng(0)


def quiet(n: int = 40, median: float = 10.0) -> list[float]:
    return list(median * (1 + 0.02 * rng.standard_normal(n)).clip(0.95, None))


def test_quiet_timing_is_stable():
    ref = quiet(40, 30.0)
    r = assess(quiet(20), ref, run_reference_best_ms=29.5, paired_case_ms=[v / 3 for v in ref])
    assert r["verdict"] == "stable" and r["reasons"] == []
    assert r["machine"] == {"verdict": "quiet", "reasons": []}
    assert r["figures"]["ratio_drift"] == pytest.approx(1.0) and r["figures"]["ratio_iqr_over_median"] < 1e-9


def test_a_busy_machine_is_disturbed_for_each_reason_but_not_unstable():
    """Absolute-speed changes are recorded: the paired ratio the gate compares stays steady."""
    busy = quiet(20)
    busy[::2] = [v * 3 for v in busy[::2]]  # half the calls three times slower
    r = assess(busy)
    assert r["verdict"] == "stable" and r["machine"]["verdict"] == "disturbed"
    assert any("fastest call" in m for m in r["machine"]["reasons"])
    drifting = quiet(40, 30.0)[:20] + quiet(20, 45.0)
    # the case slowed with its reference: the ratio did not move
    r = assess(quiet(20), drifting, paired_case_ms=[v / 3 for v in drifting])
    assert r["verdict"] == "stable" and any("moved 1.5" in m for m in r["machine"]["reasons"])
    r = assess(quiet(20), quiet(40, 60.0), run_reference_best_ms=30.0)
    assert any("slower than in this run's fastest case" in m for m in r["machine"]["reasons"])
    assert not any("busy" in m for m in r["machine"]["reasons"])  # a cause is named only when measured


def test_an_unsteady_ratio_is_unstable():
    ref = quiet(40, 30.0)
    bimodal = [v / 3 * (3 if i % 2 else 1) for i, v in enumerate(ref)]  # every other case call 3x
    r = assess(quiet(20), ref, paired_case_ms=bimodal)
    assert r["verdict"] == "unstable" and "interquartile range" in r["reasons"][0]
    drifting = [v / 3 * (1.3 if i >= 20 else 1) for i, v in enumerate(ref)]  # the case alone slowed
    r = assess(quiet(20), ref, paired_case_ms=drifting)
    assert r["verdict"] == "unstable" and any("ratio moved 1.30x" in m for m in r["reasons"])


def test_each_limit_is_a_boundary():
    """Just inside a limit passes, just outside it does not (the rule, not the constant)."""
    def with_min(ratio: float) -> list[float]:
        return [10.0] * 19 + [10.0 * ratio]

    def machine(r: dict) -> str:
        return r["machine"]["verdict"]

    assert machine(assess(with_min(LIMITS["min_over_median"] + 0.02))) == "quiet"
    assert machine(assess(with_min(LIMITS["min_over_median"] - 0.02))) == "disturbed"
    ref = [10.0] * 8
    inside = ref + [10.0 * (LIMITS["reference_drift"] - 0.02)] * 8
    outside = ref + [10.0 * (LIMITS["reference_drift"] + 0.02)] * 8
    assert machine(assess([10.0] * 20, inside)) == "quiet"
    assert machine(assess([10.0] * 20, outside)) == "disturbed"
    vs_run = 10.0 / LIMITS["reference_vs_run"]
    assert machine(assess([10.0] * 20, [10.0] * 16, run_reference_best_ms=vs_run * 1.02)) == "quiet"
    assert machine(assess([10.0] * 20, [10.0] * 16, run_reference_best_ms=vs_run * 0.98)) == "disturbed"
    paired = 10.0 / LIMITS["plain_vs_paired"]
    assert machine(assess([10.0] * 20, paired_case_ms=[paired * 1.02] * 16)) == "quiet"
    assert machine(assess([10.0] * 20, paired_case_ms=[paired * 0.98] * 16)) == "disturbed"
    drift = LIMITS["ratio_drift"]
    for factor, verdict in ((drift - 0.02, "stable"), (drift + 0.02, "unstable")):
        assert assess([10.0] * 20, [10.0] * 16, paired_case_ms=[10.0] * 8 + [10.0 * factor] * 8)["verdict"] == verdict
    spread = LIMITS["ratio_iqr_over_median"]
    for width, verdict in ((spread - 0.02, "stable"), (spread + 0.02, "unstable")):
        case_ms = [10.0 * (1 - width / 2)] * 8 + [10.0 * (1 + width / 2)] * 8
        r = assess([10.0] * 20, [10.0] * 16, paired_case_ms=case_ms[::2] + case_ms[1::2])
        assert r["figures"]["ratio_drift"] == pytest.approx(1.0) and r["verdict"] == verdict, r


def test_a_steady_plain_loop_on_a_slow_machine_is_caught_by_its_own_paired_calls():
    """The edge run's case: a steady 35.7 ms plain loop (IQR 0.6%), paired calls at 18.9 ms."""
    plain = [35.4, 35.5, 35.6, 35.6, 35.7, 35.7, 35.7, 35.8, 35.9, 37.4] * 2
    r = assess(plain, [18.9] * 40, paired_case_ms=[18.9] * 40)
    assert r["machine"]["verdict"] == "disturbed" and any("plain loop" in m for m in r["machine"]["reasons"]), r
    # the same plain loop when the paired calls agree with it (slower by cache disturbance, as usual)
    assert assess(plain, [18.9] * 40, paired_case_ms=[38.0] * 40)["machine"]["verdict"] == "quiet"


def test_a_cause_is_named_only_when_measured():
    assert cause(0.9, 0.0) == "other processes kept 0.90 cores busy"
    assert "steal time" in cause(0.3, 0.2)
    assert cause(0.01, 0.0).startswith("the machine's speed changed with no other load measured")
    assert "no load could be measured" in cause(None, None)


def test_recheck_marks_a_case_timed_before_the_machine_was_seen_fast():
    def lat(ref_ms: float) -> dict:
        return {"paired": {"reference_key": "eager/fp32/none/b1/64", "reference_ms": quiet(16, ref_ms)},
                "stability": {"verdict": "stable", "reasons": [], "machine": {"verdict": "quiet", "reasons": []}}}

    early, later, other = lat(80.0), lat(30.0), lat(31.0)
    marked = recheck_run([early, later, other])
    assert marked == [early] and early["stability"]["machine"]["verdict"] == "disturbed"
    assert early["stability"]["verdict"] == "stable"  # the ratio's verdict is not the machine's
    assert "found after the run" in early["stability"]["machine"]["reasons"][0]
    assert later["stability"]["machine"]["verdict"] == other["stability"]["machine"]["verdict"] == "quiet"
