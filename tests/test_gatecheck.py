"""Unit tests of gate-check's and bench-backends' pure parts: the injector, pairing, the verdict table."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from resnetbench.tools.benchbackends import best_of, cache_matrix, compare_blocks, ratio_ok, timed
from resnetbench.tools.gatecheck import (
    GATE_TARGETS,
    GateRun,
    kind_name,
    own_loop,
    pairs_of_round,
    pedantic_samples,
    round_order,
    summarize_gate_check,
    target_rows,
)
from resnetbench.tools.slowdown import SlowedRunner, busy_wait


class SpinRunner:
    """A stand-in backend: each run spins for a fixed time (no sleep: wall time is exact)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def prepare(self, x: Any) -> Any:
        return ("prepared", x)

    def run(self, native: Any) -> Any:
        self.calls += 1
        busy_wait(self.seconds)
        return native

    def to_logits(self, out: Any) -> Any:
        return ("logits", out)


def _wall(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@pytest.mark.timing
def test_busy_wait_lasts_at_least_the_requested_time() -> None:
    for seconds in (0.002, 0.005):
        walls = [_wall(busy_wait, seconds) for _ in range(7)]
        assert min(walls) >= seconds
        # On a loaded 2-core machine a spin can be descheduled, which only adds time:
        # the fastest of a few calls is the uncontended one.
        assert min(walls) < seconds + 0.0005
    assert _wall(busy_wait, 0) < 0.001
    assert _wall(busy_wait, -1) < 0.001


@pytest.mark.timing
@pytest.mark.parametrize("fraction", [0.10, 0.20])
def test_slowed_runner_lengthens_a_call_by_the_requested_fraction(fraction: float) -> None:
    base_s = 0.010
    inner = SpinRunner(base_s)
    slowed = SlowedRunner(inner, fraction)
    native = slowed.prepare(1)
    assert native == ("prepared", 1)
    assert slowed.to_logits(2) == ("logits", 2)
    # Fastest of several calls: preemption on a busy machine only ever adds time.
    base = min(_wall(inner.run, native) for _ in range(15))
    slow = min(_wall(slowed.run, native) for _ in range(15))
    assert inner.calls == 30  # the slowed runner really runs the inner one
    assert slow / base == pytest.approx(1 + fraction, abs=0.03)


@pytest.mark.timing
def test_pool_wait_lasts_the_requested_time_and_torch_backends_use_it() -> None:
    from resnetbench.tools.slowdown import pool_busy_wait, wait_for

    walls = [_wall(pool_busy_wait, 0.005) for _ in range(5)]
    assert 0.005 <= min(walls) < 0.0065  # one small matrix product past the deadline at most
    assert wait_for("eager") is pool_busy_wait and wait_for("compile") is pool_busy_wait
    assert wait_for("onnxruntime") is busy_wait and wait_for("openvino") is busy_wait


@pytest.mark.timing
def test_pedantic_samples_time_each_call_once_after_warmup() -> None:
    runner = SpinRunner(0.003)
    samples = pedantic_samples(runner.run, None, warmup=4, rounds=12)
    assert runner.calls == 4 + 12
    assert len(samples) == 12
    assert 3.0 <= min(samples) < 3.5  # milliseconds
    loop_runner = SpinRunner(0.003)
    own = own_loop(loop_runner.run, None, 2, 7)
    assert loop_runner.calls == 9 and len(own) == 7 and min(own) >= 3.0


def test_round_order_holds_every_kind_once_and_varies() -> None:
    rng = random.Random(0)
    orders = [round_order(rng, (0.10, 0.20)) for _ in range(40)]
    assert all(sorted(o) == ["a", "b", "slow10", "slow20"] for o in orders)
    assert len({tuple(o) for o in orders}) > 6
    assert {o[0] for o in orders} == {"a", "b", "slow10", "slow20"}
    assert kind_name(0.1) == "slow10" and kind_name(0.2) == "slow20" and kind_name(0.05) == "slow5"


def test_pairs_of_round_compare_slowed_runs_to_unmodified_ones() -> None:
    runs = {
        k: GateRun("c", k, 0.0, [float(i + 1)] * 10) for i, k in enumerate(["a", "b", "slow10", "slow20"])
    }
    pairs = pairs_of_round("c", runs, (0.10, 0.20), ["slow20", "b", "slow10", "a"])
    assert [(kind, base.kind, cur.kind) for kind, base, cur in pairs] == [
        ("aa", "b", "a"),  # the earlier unmodified run is the baseline
        ("slow10", "a", "slow10"),
        ("slow20", "b", "slow20"),
    ]


def _decisions(kind: str, n: int, regressed: int, ratio: float) -> list[dict[str, Any]]:
    return [{"kind": kind, "decision": "regressed" if i < regressed else "unchanged", "ratio": ratio} for i in range(n)]


def _rows(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = summarize_gate_check(pairs)
    rows = {r.kind: r for r in target_rows(summary)}
    # The table's per-row verdicts and the summary's overall verdict must agree.
    assert all(r.ok for r in rows.values()) == summary["meets_targets"]
    return rows


def test_table_passes_when_every_target_holds() -> None:
    pairs = _decisions("aa", 200, 1, 1.0) + _decisions("slow10", 50, 40, 1.12) + _decisions("slow20", 50, 48, 1.18)
    rows = _rows(pairs)
    assert [rows[k].ok for k in ("aa", "slow10", "slow20")] == [True, True, True]
    assert rows["aa"].rate == pytest.approx(0.005)
    assert rows["slow10"].mean_abs_ratio_error == pytest.approx(0.02)
    assert rows["slow20"].within_ratio_error == 1.0


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"aa": (100, 2, 1.0)}, "aa"),  # 2% false positives
        ({"aa": (100, 1, 1.0)}, "aa"),  # 1 in 100 does not show a rate below 1%
        ({"aa": (99, 0, 1.0)}, "aa"),  # too few A/A comparisons
        ({"slow10": (50, 39, 1.10)}, "slow10"),  # 78% < 80%
        ({"slow20": (50, 47, 1.20)}, "slow20"),  # 94% < 95%
        ({"slow20": (50, 50, 1.235)}, "slow20"),  # ratio off by 0.035
        ({"slow10": (50, 50, 1.065)}, "slow10"),  # ratio off by 0.035 the other way
    ],
)
def test_table_fails_the_row_that_misses_its_target(change: dict[str, tuple[int, int, float]], failing: str) -> None:
    spec = {"aa": (100, 0, 1.0), "slow10": (50, 45, 1.10), "slow20": (50, 50, 1.20), **change}
    rows = _rows([d for kind, (n, r, ratio) in spec.items() for d in _decisions(kind, n, r, ratio)])
    assert {k for k, row in rows.items() if not row.ok} == {failing}


def test_table_fails_when_a_kind_is_missing() -> None:
    rows = _rows(_decisions("aa", 120, 0, 1.0) + _decisions("slow20", 50, 50, 1.2))
    assert not rows["slow10"].ok and rows["slow10"].n == 0
    assert rows["aa"].ok and rows["slow20"].ok


def test_table_targets_come_from_the_gate() -> None:
    assert GATE_TARGETS["false_positive_rate_max"] == 0.01
    assert GATE_TARGETS["detection_rate_min"] == {"slow10": 0.80, "slow20": 0.95}
    rows = target_rows(
        summarize_gate_check(_decisions("aa", 100, 1, 1.0)), {**GATE_TARGETS, "false_positive_rate_max": 0.0}
    )
    assert not next(r for r in rows if r.kind == "aa").ok


# ----------------------------------------------------------------------------- bench-backends


@pytest.mark.timing
def test_timed_loop_counts_calls_and_measures_milliseconds() -> None:
    calls = []
    samples = timed(lambda: (calls.append(1), busy_wait(0.002)), 3, 6)
    assert len(calls) == 9 and len(samples) == 6 and min(samples) >= 2.0


def test_compare_blocks_and_best_of() -> None:
    suite = [[10.0, 11.0, 12.0], [10.5, 10.5, 10.5]]
    hand = [[10.0, 10.0, 10.0], [9.0, 10.0, 11.0]]
    out = compare_blocks(suite, hand)
    assert out["suite_median_ms"] == 10.5 and out["hand_median_ms"] == 10.0
    assert out["ratio"] == pytest.approx(1.05)
    assert out["ratio_per_rep"] == pytest.approx([1.1, 1.05])
    # The verdict is on the median of the per-repetition ratios (1.075 here), not on the pooled one.
    assert out["ratio_rep_median"] == pytest.approx(1.075) and not out["ratio_ok"]
    assert compare_blocks([[10.0], [10.4]], [[10.0], [10.0]])["ratio_ok"]
    # Slower than the hand loop by more than 5% misses; faster never does.
    assert ratio_ok(1.05) and not ratio_ok(1.06) and ratio_ok(0.8)
    per = {
        "a": {"suite_median_ms": 20.0, "hand_median_ms": 19.0},
        "b": {"suite_median_ms": 30.0, "hand_median_ms": 18.0},
    }
    best = best_of(per)
    assert (best["suite_backend"], best["hand_backend"]) == ("a", "b")
    assert best["ratio"] == pytest.approx(20 / 18) and not best["ok"]
    # with the blocks: the median of the per-repetition ratios, as for each backend
    per["a"]["suite_samples_ms"] = [[20.0], [20.0], [40.0]]
    per["b"]["hand_samples_ms"] = [[19.5], [19.5], [19.0]]
    best = best_of(per)
    assert best["ratio"] == pytest.approx(20 / 19.5) and best["ok"] and best["pooled_ratio"] == pytest.approx(20 / 18)


def test_cache_matrix_has_twenty_distinct_cases() -> None:
    cases = cache_matrix()
    assert len(cases) == 20 == len({c.id for c in cases})
    assert {c.backend for c in cases} == {"eager", "torchscript", "compile", "onnxruntime", "openvino"}
    assert {(c.dtype, c.batch) for c in cases} == {("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)}


@pytest.mark.timing
@pytest.mark.slow
def test_gate_check_runs_end_to_end_on_a_tiny_case(tmp_path: Any) -> None:
    from resnetbench.tools.gatecheck import run_gate_check

    result = run_gate_check("resnet18", ("eager",), input_size=32, rounds_of_pairs=2, rounds=12, warmup=2, pairs=8,
                            blocks=4, also_thresholds=(0.05,), cache_dir=tmp_path)
    kinds = result["summary"]["kinds"]
    assert {k: v["n"] for k, v in kinds.items()} == {"aa": 2, "slow10": 2, "slow20": 2}
    assert len(result["runs"]) == 2 * 4
    assert all(len(r["paired"]["case_ms"]) == 8 and r["paired"]["blocks"] == 4 for r in result["runs"])
    slowed = [r for r in result["runs"] if r["kind"] == "slow20"]
    assert all(r["fraction"] == 0.2 for r in slowed)
    assert {d["threshold"] for d in result["other_thresholds"]["0.05"]["pairs"]} == {0.05}
    assert "resnet18 fp32" in result["settings"]["reference"]["resnet18-fp32-none-eager-b1"]


# --- across processes: gate-check --real-flow (resnetbench/tools/realflow.py) ---


def _comparison(decisions: dict[str, str], red: bool) -> dict[str, Any]:
    return {"red": red, "cases": {case: {"decision": d, "ratio": 1.0, "reason": ""} for case, d in decisions.items()}}


def test_real_flow_summary_counts_red_comparisons_per_group_and_judges_the_targets() -> None:
    from resnetbench.tools import realflow

    ids = ("resnet18-fp32-none-eager-b1", "resnet18-int8-static-onnxruntime-b1")
    aa = [_comparison(dict.fromkeys(ids, "unchanged"), False) for _ in range(29)]
    aa.append(_comparison({ids[0]: "inconclusive", ids[1]: "unchanged"}, True))
    slow = [_comparison(dict.fromkeys(ids, "regressed"), True) for _ in range(30)]
    summary = {"aa": realflow.summarize(aa, "unchanged"), "slow15": realflow.summarize(slow, "regressed"),
               "slow20": realflow.summarize(slow, "regressed")}
    assert summary["aa"]["red"] == 1 and summary["aa"]["by_group"]["fp32/eager"] == {"unchanged": 29, "inconclusive": 1}
    targets = realflow.verdict(summary)
    assert all(t["met"] for t in targets.values()), targets  # 1 in 30 is the limit itself
    aa.append(_comparison({ids[0]: "regressed", ids[1]: "unchanged"}, True))  # a false "regressed" fails, always
    summary["aa"] = realflow.summarize(aa, "unchanged")
    targets = realflow.verdict(summary)
    assert not targets["aa_regressed"]["met"] and not targets["aa_red_max"]["met"]
    missed = [_comparison({ids[0]: "unchanged", ids[1]: "regressed"}, True)] + slow[:29]
    summary["slow20"] = realflow.summarize(missed, "regressed")
    assert not realflow.verdict(summary)["slow20_caught_min"]["met"]  # a case missed is a comparison missed


@pytest.mark.parametrize("argv", [["--real-flow", "no-such.yaml"],
                                  ["--real-flow", "matrix.yaml", "--runs", "1"],
                                  ["--real-flow", "matrix.yaml", "--slow", "fast"],
                                  ["--real-flow", "matrix.yaml", "--slow", "0.15:0"]])
def test_real_flow_refuses_bad_input_before_running_anything(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from resnetbench.cli import main

    assert main(["gate-check", *argv]) == 2
    assert "resnetbench gate-check: error: --" in capsys.readouterr().err
