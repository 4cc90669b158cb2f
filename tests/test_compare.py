"""Tests for the regression gate (resnetbench.compare) on synthetic, seeded latency samples."""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resnetbench.compare import (
    blocking,
    compare_results,
    decide_latency,
    fingerprint_warning,
    format_table,
    main_compare,
    parse_allow,
    robust_cv,
    summary_line,
)
from resnetbench.results import ResultsError, load
from resnetbench.tools.gatecheck import summarize_gate_check

EXAMPLE = Path(__file__).parent / "data" / "results_example.json"
N_SAMPLES = 80  # the suite's default rounds, as in results_example.json
N_CAL = 20


# --------------------------------------------------------------------------- synthetic data


def latency_samples(
    rng: np.random.Generator, n: int, median_ms: float, cv: float, outlier_p: float = 0.03
) -> np.ndarray:
    """Lognormal latency with occasional 1.3-2.5x outliers (preemption, page faults)."""
    x = median_ms * np.exp(rng.normal(0.0, cv, n))
    hit = rng.random(n) < outlier_p
    x[hit] *= rng.uniform(1.3, 2.5, hit.sum())
    return x


def synthetic_pair(
    seed: int, shift: float, drift_sd: float = 0.0, n: int = N_SAMPLES
) -> dict[str, Any]:
    """Two runs of one case on machines of random speed; the current one is `shift` slower.

    Each run's machine speed (sd 5%) scales both its calibration kernel and its case, as a
    busier or faster machine does; `drift_sd` adds run-to-run drift that calibration does
    not see.
    """
    rng = np.random.default_rng(seed)
    cv = rng.uniform(0.03, 0.05)
    sides = []
    for factor in (1.0, shift):
        machine = np.exp(rng.normal(0.0, 0.05))
        cal = 1.5 * machine * np.exp(rng.normal(0.0, 0.015, N_CAL))
        drift = np.exp(rng.normal(0.0, drift_sd)) if drift_sd else 1.0
        sides.append((latency_samples(rng, n, 20.0 * machine * factor * drift, cv), cal))
    (base, base_cal), (cur, cur_cal) = sides
    return decide_latency(base, cur, base_cal, cur_cal, rng_seed=seed)


def run_trials(shift: float, count: int, seed0: int, **kw: Any) -> list[dict[str, Any]]:
    """`count` independent seeded comparisons with the given injected shift."""
    return [synthetic_pair(seed0 + i, shift, **kw) for i in range(count)]


def decisions(results: list[dict[str, Any]]) -> dict[str, int]:
    """Counts of each decision."""
    out: dict[str, int] = {}
    for r in results:
        out[r["decision"]] = out.get(r["decision"], 0) + 1
    return out


# --------------------------------------------------------------------------- decide_latency


def test_aa_pairs_never_regress() -> None:
    results = run_trials(1.0, 200, seed0=10_000)
    counts = decisions(results)
    assert counts.get("regressed", 0) == 0, counts
    # An A/A pair should not be called faster either, and hardly ever be left undecided.
    assert counts.get("improved", 0) == 0, counts
    assert counts.get("unchanged", 0) >= 196, counts


def test_aa_pairs_never_regress_with_drift_calibration_misses() -> None:
    # 1% run-to-run drift that calibration does not cancel: p-values alone are
    # over-confident here, the half-threshold effect floor is what keeps the gate quiet.
    results = run_trials(1.0, 200, seed0=20_000, drift_sd=0.01)
    assert decisions(results).get("regressed", 0) == 0


def test_detects_20_percent_slowdown() -> None:
    results = run_trials(1.20, 100, seed0=30_000)
    assert decisions(results).get("regressed", 0) >= 95


def test_detects_10_percent_slowdown() -> None:
    results = run_trials(1.10, 100, seed0=40_000)
    assert decisions(results).get("regressed", 0) >= 80


@pytest.mark.parametrize("shift", [1.10, 1.20])
def test_ratio_estimate_close_to_injected(shift: float) -> None:
    results = run_trials(shift, 100, seed0=50_000)
    errors = np.array([abs(r["ratio"] - shift) for r in results])
    # Median of 80 samples with 3-5% CV, twice, plus calibration: sd ~1% on the ratio.
    assert np.mean(errors <= 0.03) >= 0.98, np.sort(errors)[-5:]
    assert errors.mean() <= 0.015
    # The interval must cover the truth nearly always (95% nominal).
    covered = sum(r["ci"][0] <= shift <= r["ci"][1] for r in results)
    assert covered >= 88


def test_20_percent_speedup_is_improved() -> None:
    results = run_trials(1 / 1.20, 50, seed0=60_000)
    assert decisions(results) == {"improved": 50}
    assert all(r["ratio"] < 1 for r in results)


def test_small_real_slowdown_measured_precisely_is_not_a_regression() -> None:
    # A 2% slowdown is real but far below a 10% threshold: must not fail the gate.
    results = run_trials(1.02, 50, seed0=70_000)
    assert decisions(results).get("regressed", 0) == 0


def test_too_few_samples_is_inconclusive() -> None:
    rng = np.random.default_rng(1)
    base = latency_samples(rng, 30, 20.0, 0.04)
    cur = latency_samples(rng, 5, 30.0, 0.04)  # 50% slower, but only 5 samples
    result = decide_latency(base, cur)
    assert result["decision"] == "inconclusive"
    assert "n=5 < 10" in result["reason"]
    assert result["ratio"] is None


def test_calibration_cancels_uniform_machine_slowdown() -> None:
    rng = np.random.default_rng(2)
    base = latency_samples(rng, N_SAMPLES, 20.0, 0.04)
    base_cal = 1.5 * np.exp(rng.normal(0, 0.015, N_CAL))
    cur = 1.3 * latency_samples(rng, N_SAMPLES, 20.0, 0.04)
    cur_cal = 1.3 * 1.5 * np.exp(rng.normal(0, 0.015, N_CAL))
    result = decide_latency(base, cur, base_cal, cur_cal)
    assert result["decision"] == "unchanged", result["reason"]
    assert abs(result["ratio"] - 1.0) < 0.03
    # Without calibration the same data is a 30% regression.
    assert decide_latency(base, cur)["decision"] == "regressed"


def test_noisy_calibration_is_inconclusive() -> None:
    rng = np.random.default_rng(3)
    base = latency_samples(rng, N_SAMPLES, 20.0, 0.04)
    cur = latency_samples(rng, N_SAMPLES, 24.0, 0.04)
    quiet = 1.5 * np.exp(rng.normal(0, 0.01, N_CAL))
    noisy = 1.5 * np.exp(rng.normal(0, 0.20, N_CAL))
    assert robust_cv(noisy) > 0.10 > robust_cv(quiet)
    result = decide_latency(base, cur, quiet, noisy)
    assert result["decision"] == "inconclusive"
    assert "calibration kernel varied" in result["reason"] and "current" in result["reason"]


def test_wide_interval_is_inconclusive() -> None:
    rng = np.random.default_rng(4)
    base = latency_samples(rng, 12, 20.0, 0.25, outlier_p=0)
    cur = latency_samples(rng, 12, 20.0, 0.25, outlier_p=0)
    result = decide_latency(base, cur)
    lo, hi = result["ci"]
    assert lo < 1 < hi and (hi > 1.1 or lo < 1 / 1.1)
    assert result["decision"] == "inconclusive"
    assert "too noisy" in result["reason"]


def test_regression_reason_reads_well() -> None:
    rng = np.random.default_rng(5)
    base = latency_samples(rng, N_SAMPLES, 20.0, 0.04)
    result = decide_latency(base, 1.18 * latency_samples(rng, N_SAMPLES, 20.0, 0.04))
    assert result["decision"] == "regressed"
    assert result["reason"].startswith(f"{result['ratio']:.2f}x slower (95% CI ")
    assert result["p_value"] < 1e-6
    assert result["ci"][0] < result["ratio"] < result["ci"][1]


def test_decide_latency_is_deterministic_and_validates() -> None:
    rng = np.random.default_rng(6)
    base, cur = latency_samples(rng, 40, 20.0, 0.04), latency_samples(rng, 40, 21.0, 0.04)
    assert decide_latency(base, cur, rng_seed=3) == decide_latency(base, cur, rng_seed=3)
    with pytest.raises(ValueError):
        decide_latency([1.0] * 20, [0.0] * 20)
    with pytest.raises(ValueError):
        decide_latency(base, cur, threshold=0)


def test_identical_constant_samples_unchanged() -> None:
    result = decide_latency([5.0] * 20, [5.0] * 20)
    assert result["decision"] == "unchanged" and result["p_value"] == 1.0 and result["ratio"] == 1.0


# --------------------------------------------------------------------------- compare_results


@pytest.fixture()
def example() -> dict[str, Any]:
    """The example run without its failing case (a failure fails the gate even when the baseline failed too)."""
    data = load(EXAMPLE)
    data["cases"] = [c for c in data["cases"] if c["outcome"] != "failed"]
    return data


@pytest.fixture()
def with_failure() -> dict[str, Any]:
    return load(EXAMPLE)


def case(data: dict[str, Any], case_id: str) -> dict[str, Any]:
    return next(c for c in data["cases"] if c["id"] == case_id)


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in records}


EAGER = "resnet18-fp32-none-eager-b1"
ORT = "resnet18-fp32-none-onnxruntime-b1"
INT8 = "resnet18-int8-static-onnxruntime-b1"
FP16 = "resnet18-fp16-none-eager-b1"
BF16 = "resnet18-bf16-none-onnxruntime-b1"


def test_self_comparison_with_a_failing_case_fails_only_that_case(with_failure: dict[str, Any]) -> None:
    records = compare_results(with_failure, copy.deepcopy(with_failure))
    assert [r["id"] for r in blocking(records)] == [BF16]
    assert by_id(records)[BF16]["decision"] == "failed"


def test_self_comparison_is_all_unchanged(example: dict[str, Any]) -> None:
    records = compare_results(example, copy.deepcopy(example))
    assert [r["id"] for r in records] == [c["id"] for c in example["cases"]]
    assert {r["decision"] for r in records} == {"unchanged"}
    rec = by_id(records)
    assert rec[FP16]["reason"].startswith("skipped in both: fp16 convolutions")
    assert rec[EAGER]["ratio"] == 1.0 and rec[EAGER]["p_value"] == 1.0
    assert {"id", "decision", "ratio", "ci", "p_value", "reason", "checks"} <= set(rec[EAGER])


def test_slower_case_regresses_others_do_not(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    lat = case(current, ORT)["latency"]
    lat["samples_ms"] = [v * 1.25 for v in lat["samples_ms"]]
    rec = by_id(compare_results(example, current))
    assert rec[ORT]["decision"] == "regressed"
    assert abs(rec[ORT]["ratio"] - 1.25) < 0.01
    assert "slower" in rec[ORT]["reason"]
    assert rec[EAGER]["decision"] == "unchanged"


def test_a_recipe_change_is_named_beside_the_latency_change(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    for data, recipe in ((example, "channels_last"), (current, "mkldnn")):
        case(data, EAGER)["latency"].setdefault("runtime", {})["recipe"] = recipe
    lat = case(current, EAGER)["latency"]
    lat["samples_ms"] = [v * 1.25 for v in lat["samples_ms"]]
    rec = by_id(compare_results(example, current))[EAGER]
    assert rec["decision"] == "regressed" and rec["recipe_change"] == ["channels_last", "mkldnn"]
    assert "recipe changed channels_last -> mkldnn" in rec["reason"]
    # the same recipe on both sides says nothing about recipes
    assert "recipe_change" not in by_id(compare_results(example, copy.deepcopy(example)))[EAGER]


def paired(ratio: float, recipe: str, n: int = 40) -> dict[str, Any]:
    """Reference pairs at a steady case/reference ratio, with the reference running ``recipe``."""
    rng = np.random.default_rng(int(ratio * 1000))
    ref = list(10 * (1 + 0.01 * rng.standard_normal(n)))
    return {"reference_ms": ref, "case_ms": [r * ratio * (1 + 0.01 * e) for r, e in zip(ref, rng.standard_normal(n), strict=True)],
            "blocks": 8, "reference_key": f"eager/fp32/none/b1/224/{recipe}"}


def test_a_recipe_change_is_never_decided_on_ratios_to_a_reference_that_followed_it(example: dict[str, Any]) -> None:
    # The reference runs the case's recipe: a head whose new recipe is 30% slower on both the case
    # and the reference shows an unchanged ratio. The change must block, named.
    current = copy.deepcopy(example)
    for data, recipe in ((example, "channels_last"), (current, "mkldnn")):
        lat = case(data, EAGER)["latency"]
        lat.setdefault("runtime", {})["recipe"] = recipe
        lat["paired"] = paired(0.7, recipe)
    rec = by_id(compare_results(example, current))[EAGER]
    assert rec["decision"] == "inconclusive" and rec["recipe_change"] == ["channels_last", "mkldnn"]
    assert "latency not compared: recipe changed channels_last -> mkldnn" in rec["reason"]
    # a baseline paired with another reference (an older resnetbench ran it on the default recipe)
    case(example, EAGER)["latency"]["runtime"]["recipe"] = "mkldnn"
    case(example, EAGER)["latency"]["paired"]["reference_key"] = "eager/fp32/none/b1/224"
    rec = by_id(compare_results(example, current))[EAGER]
    assert rec["decision"] == "inconclusive" and "the reference differs" in rec["reason"]
    # the same recipe and reference on both sides decide on the ratios
    case(example, EAGER)["latency"]["paired"] = paired(0.7, "mkldnn")
    assert by_id(compare_results(example, current))[EAGER]["decision"] == "unchanged"


def test_only_in_one_side(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    current["cases"] = [c for c in current["cases"] if c["id"] != EAGER]
    new = copy.deepcopy(case(example, ORT))
    new["id"] = "resnet34-fp32-none-onnxruntime-b1"
    current["cases"].append(new)
    records = compare_results(example, current)
    rec = by_id(records)
    assert rec[EAGER]["decision"] == "missing"
    assert rec[EAGER]["reason"] == "passed in baseline, absent now: the case vanished"
    assert rec[new["id"]]["decision"] == "new"
    assert records[-1]["id"] == new["id"]  # baseline order, then new cases
    assert [r["id"] for r in blocking(records)] == [EAGER]


def test_a_new_failing_case_fails_the_gate(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    new = copy.deepcopy(case(example, ORT))
    new.update(id="resnet34-fp32-none-onnxruntime-b1", outcome="failed", reason="accuracy failed")
    current["cases"].append(new)
    rec = by_id(compare_results(example, current))
    assert rec[new["id"]]["decision"] == "failed"
    assert rec[new["id"]]["reason"] == "new case, failed: accuracy failed"


def test_a_failure_on_both_sides_still_fails(example: dict[str, Any]) -> None:
    base, current = copy.deepcopy(example), copy.deepcopy(example)
    for data in (base, current):
        case(data, EAGER)["outcome"], case(data, EAGER)["reason"] = "failed", "accuracy failed"
    rec = by_id(compare_results(base, current))
    assert rec[EAGER]["decision"] == "failed"
    assert rec[EAGER]["reason"].startswith("failed now (also in baseline): accuracy failed")


def test_a_case_skipped_in_baseline_only_is_new_coverage(example: dict[str, Any]) -> None:
    base = copy.deepcopy(example)
    b = case(base, EAGER)
    b["outcome"], b["reason"] = "skipped", "no GPU"
    del b["latency"]
    rec = by_id(compare_results(base, example))
    assert rec[EAGER]["decision"] == "new" and not blocking([rec[EAGER]])


def test_unstable_latency_is_blocking_and_not_compared(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    case(current, EAGER)["latency"]["stability"] = {"verdict": "unstable", "reasons": ["min/median 0.3"]}
    rec = by_id(compare_results(example, current))
    assert rec[EAGER]["decision"] == "unstable"
    assert rec[EAGER]["latency"] is None and "latency unstable in current" in rec[EAGER]["reason"]
    # re-timed clean is a result like any other
    case(current, EAGER)["latency"]["stability"]["verdict"] = "retimed"
    assert by_id(compare_results(example, current))[EAGER]["decision"] == "unchanged"


def test_allowances_from_the_matrix_and_the_command_line(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    current["cases"] = [c for c in current["cases"] if c["id"] not in (EAGER, ORT)]
    current["gate"] = {"allow": [{"id": "*-eager-b1", "reason": "eager moved to another job"}]}
    records = compare_results(example, current, allow=[parse_allow("resnet18-fp32-none-onnx*=flaky runner")])
    rec = by_id(records)
    assert rec[EAGER]["allowed"] == "eager moved to another job"
    assert rec[ORT]["allowed"] == "flaky runner"
    assert blocking(records) == []
    table = format_table(records)
    assert "missing (allowed)" in table and "eager moved to another job" in table
    assert "2 missing" in summary_line(records) and summary_line(records).endswith("2 allowed -> gate passed")
    with pytest.raises(ResultsError, match="expected PATTERN=REASON"):
        parse_allow("resnet18-*")


def test_size_growth_regresses(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    case(current, INT8)["size"]["artifact_bytes"] = int(11_900_000 * 1.05)
    case(current, EAGER)["size"]["artifact_bytes"] = int(46_800_000 * 1.01)  # within 2%
    rec = by_id(compare_results(example, current))
    assert rec[INT8]["decision"] == "regressed"
    assert "artifact grew +5.0%" in rec[INT8]["reason"]
    size_check = next(ch for ch in rec[INT8]["checks"] if ch["name"] == "size")
    assert size_check["status"] == "regressed"
    assert rec[EAGER]["decision"] == "unchanged"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("task", "drop_points"), 1.5, "accuracy drop grew 0.50 -> 1.50 points"),
        (("metrics", "rel_l2"), 5e-3, "rel_l2 grew"),
        (("metrics", "cosine"), 0.99, "cosine fell"),
        (("metrics", "centered_cosine"), 0.95, "centred cosine fell"),
        (("metrics", "centered_rel_l2"), 0.3, "error against the reference grew 0.02 -> 0.3"),
    ],
)
def test_accuracy_worsening_regresses(
    example: dict[str, Any], path: tuple[str, str], value: float, expected: str
) -> None:
    # the example predates the centred metrics: give the baseline values to worsen
    case(example, INT8)["accuracy"]["metrics"].update(centered_cosine=0.998, centered_rel_l2=0.02)
    current = copy.deepcopy(example)
    case(current, INT8)["accuracy"][path[0]][path[1]] = value
    rec = by_id(compare_results(example, current))
    assert rec[INT8]["decision"] == "regressed"
    assert expected in rec[INT8]["reason"]


def test_accuracy_noise_does_not_regress(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    acc = case(current, INT8)["accuracy"]
    acc["task"]["drop_points"] = 0.9  # +0.4 points, within 0.5
    acc["metrics"]["rel_l2"] = 5e-5  # 50x growth but still float noise (< 1e-4)
    acc["metrics"]["cosine"] = 0.9995  # fell 5e-4 < 1e-3
    assert by_id(compare_results(example, current))[INT8]["decision"] == "unchanged"


def test_passed_then_failed_fails(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    c = case(current, EAGER)
    c["outcome"], c["reason"] = "error", "backend crashed"
    rec = by_id(compare_results(example, current))
    assert rec[EAGER]["decision"] == "failed"
    assert "error now (passed in baseline): backend crashed" in rec[EAGER]["reason"]


def test_skipped_now_is_missing(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    c = case(current, EAGER)
    c["outcome"], c["reason"] = "skipped", "onnxruntime not installed"
    del c["latency"]
    rec = by_id(compare_results(example, current))
    assert rec[EAGER]["decision"] == "missing"
    assert "passed in baseline, skipped now: onnxruntime not installed" in rec[EAGER]["reason"]


def test_uniform_machine_slowdown_in_files_is_unchanged(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    cal = current["environment"]["calibration"]
    cal["samples_ms"] = [v * 1.3 for v in cal["samples_ms"]]
    cal["median_ms"] *= 1.3
    for c in current["cases"]:
        if "latency" in c:
            c["latency"]["samples_ms"] = [v * 1.3 for v in c["latency"]["samples_ms"]]
    records = compare_results(example, current)
    assert {r["decision"] for r in records} == {"unchanged"}
    assert all(r["ratio"] is None or abs(r["ratio"] - 1) < 1e-9 for r in records)


def test_fingerprint_warning_and_strict(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    assert fingerprint_warning(example, current) is None
    fp = current["environment"]["fingerprint"]
    fp["hash"], fp["libraries"]["torch"] = "ffff0000", "2.15.0"
    warning = fingerprint_warning(example, current)
    assert warning is not None and "0123abcd != ffff0000" in warning
    assert "libraries.torch: '2.14.1' -> '2.15.0'" in warning
    compare_results(example, current)  # a warning only
    with pytest.raises(ResultsError, match="strict"):
        compare_results(example, current, strict=True)


def test_format_table_puts_regressions_first(example: dict[str, Any]) -> None:
    current = copy.deepcopy(example)
    lat = case(current, INT8)["latency"]
    lat["samples_ms"] = [v * 1.5 for v in lat["samples_ms"]]
    table = format_table(compare_results(example, current))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["case", "decision"]
    assert lines[2].startswith(INT8) and "regressed" in lines[2] and "1.500" in lines[2]
    assert len(lines) == 2 + len(example["cases"])


# --------------------------------------------------------------------------- main_compare


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_main_exit_codes(example: dict[str, Any], tmp_path: Path) -> None:
    base = write(tmp_path, "base.json", example)
    out, err = io.StringIO(), io.StringIO()
    assert main_compare(base, base, None, False, out=out, err=err) == 0
    assert "4 cases" in out.getvalue() and err.getvalue() == ""

    current = copy.deepcopy(example)
    lat = case(current, EAGER)["latency"]
    lat["samples_ms"] = [v * 1.2 for v in lat["samples_ms"]]
    cur = write(tmp_path, "cur.json", current)
    out = io.StringIO()
    assert main_compare(base, cur, 0.1, False, out=out, err=err) == 1
    assert "1 regressed" in out.getvalue() and "gate FAILED" in out.getvalue()
    # an allowance on the command line lets it through, and says so
    out = io.StringIO()
    assert main_compare(base, cur, 0.1, False, out=out, err=err, allow=[f"{EAGER}=known"]) == 0
    assert "regressed (allowed)" in out.getvalue() and f"{EAGER} (regressed): known" in out.getvalue()
    # A 20% slowdown is within a 30% threshold.
    assert main_compare(base, cur, 0.3, False, out=io.StringIO(), err=err) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1, "cases": [{"id": "x"}]}', "lacks"),
        ("BAD_SAMPLES", "latency.samples_ms must be a list of positive numbers"),
    ],
)
def test_main_bad_input_exits_2_without_traceback(
    example: dict[str, Any], tmp_path: Path, content: str | None, message: str
) -> None:
    base = write(tmp_path, "base.json", example)
    bad = tmp_path / "bad.json"
    if content == "BAD_SAMPLES":
        broken = copy.deepcopy(example)
        case(broken, EAGER)["latency"]["samples_ms"] = ["fast", 1.0]
        bad.write_text(json.dumps(broken), encoding="utf-8")
    elif content is not None:
        bad.write_text(content, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert main_compare(base, str(bad), None, False, out=out, err=err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in err.getvalue() + out.getvalue()


def test_main_bad_threshold_exits_2(example: dict[str, Any], tmp_path: Path) -> None:
    base = write(tmp_path, "base.json", example)
    err = io.StringIO()
    assert main_compare(base, base, -0.1, False, out=io.StringIO(), err=err) == 2
    assert "--threshold" in err.getvalue()


def test_main_fingerprint_warning_printed_and_strict_refuses(
    example: dict[str, Any], tmp_path: Path
) -> None:
    current = copy.deepcopy(example)
    current["environment"]["fingerprint"]["hash"] = "ffff0000"
    base, cur = write(tmp_path, "b.json", example), write(tmp_path, "c.json", current)
    out = io.StringIO()
    assert main_compare(base, cur, None, False, out=out, err=io.StringIO()) == 0
    assert (
        out.getvalue().startswith("!!!") and "WARNING: baseline and current ran" in out.getvalue()
    )
    err = io.StringIO()
    assert main_compare(base, cur, None, True, out=io.StringIO(), err=err) == 2
    assert "refusing to compare (--strict)" in err.getvalue()


def test_main_defaults_to_real_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_compare(str(tmp_path / "missing.json"), str(tmp_path / "x.json"), None, False) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("resnetbench compare: error:") and "missing.json" in captured.err


# --------------------------------------------------------------------------- gate check summary


def test_summarize_gate_check_counts() -> None:
    pairs = (
        [{"kind": "aa", "decision": "unchanged", "ratio": 1.01}] * 99
        + [{"kind": "aa", "decision": "regressed", "ratio": 1.07}]
        + [{"kind": "slow10", "decision": "regressed", "ratio": 1.12}] * 8
        + [{"kind": "slow10", "decision": "unchanged", "ratio": 1.08}] * 2
        + [{"kind": "slow20", "decision": "regressed", "ratio": 1.20}] * 9
        + [{"kind": "slow20", "decision": "inconclusive", "ratio": None}]
    )
    s = summarize_gate_check(pairs)
    assert s["false_positive_rate"] == pytest.approx(0.01)
    assert s["detection_rate"] == {"slow10": pytest.approx(0.8), "slow20": pytest.approx(0.9)}
    assert s["kinds"]["slow10"]["mean_abs_ratio_error"] == pytest.approx(0.02)
    assert s["kinds"]["slow20"]["n_ratio"] == 9
    assert s["kinds"]["slow20"]["decisions"] == {"regressed": 9, "inconclusive": 1}
    assert not s["meets_targets"]
    assert any("slow20 detected 9/10" in f for f in s["failures"])


def test_summarize_gate_check_on_synthetic_runs_meets_targets() -> None:
    pairs = []
    for kind, shift, seed0 in (
        ("aa", 1.0, 80_000),
        ("slow10", 1.1, 81_000),
        ("slow20", 1.2, 82_000),
    ):
        for r in run_trials(shift, 100, seed0=seed0):
            pairs.append({"kind": kind, "decision": r["decision"], "ratio": r["ratio"]})
    s = summarize_gate_check(pairs)
    assert s["meets_targets"], s["failures"]
    assert s["kinds"]["aa"]["regressed"] == 0


def test_compare_never_imports_torch() -> None:
    import subprocess

    code = "import sys, resnetbench.compare; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
