"""End-to-end: ``pytest --matrix`` on small matrix files, checking outcomes, ids and the results file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import by_id

SMALL = """
matrix:
  arch: [resnet18]
  dtype: [fp32]
  backend: [eager, onnxruntime]
input_size: 32
dataset: {name: synthetic, samples: 16}
latency: {warmup: 1, rounds: 5, pairs: 8, blocks: 4}
claims: false
"""


def test_collect_only_lists_documented_ids(run_matrix):
    matrix = """
matrix:
  arch: [resnet18, resnet50]
  dtype: [fp32, bf16]
  backend: [eager, onnxruntime]
  exclude:
    - {arch: resnet50, dtype: bf16}
  include:
    - {arch: resnet34, dtype: int8, compression: static, backend: onnxruntime, batch: 4}
claims: false
"""
    result, _ = run_matrix(matrix, "--collect-only", "-q", "-m", "size")
    ids = sorted(line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_size[" in line)
    assert ids == sorted(
        [
            "resnet18-fp32-none-eager-b1",
            "resnet18-fp32-none-onnxruntime-b1",
            "resnet18-bf16-none-eager-b1",
            "resnet18-bf16-none-onnxruntime-b1",
            "resnet50-fp32-none-eager-b1",
            "resnet50-fp32-none-onnxruntime-b1",
            "resnet34-int8-static-onnxruntime-b4",
        ]
    )


def test_k_selects_by_axis(run_matrix):
    matrix = "matrix:\n  arch: [resnet18, resnet50]\n  backend: [eager, onnxruntime]\nclaims: false\n"
    result, _ = run_matrix(matrix, "--collect-only", "-q", "-k", "resnet50 and onnxruntime")
    selected = [line for line in result.outlines if "[" in line]
    assert selected and all("resnet50-fp32-none-onnxruntime-b1" in line for line in selected)
    assert len(selected) == 3  # size, accuracy, latency


@pytest.mark.timing
def test_small_matrix_passes_and_writes_results(run_matrix):
    result, data = run_matrix(SMALL)
    result.assert_outcomes(passed=6)
    cases = by_id(data)
    assert set(cases) == {"resnet18-fp32-none-eager-b1", "resnet18-fp32-none-onnxruntime-b1"}
    for case in cases.values():
        assert case["outcome"] == "passed"
        assert case["tests"] == {"size": "passed", "accuracy": "passed", "latency": "passed"}
        assert case["size"]["params"] == 11_689_512
        assert case["size"]["formula_bytes"] > 11_689_512 * 4
        assert case["accuracy"]["reference"] == "fp64-golden"
        assert case["accuracy"]["metrics"]["rel_l2"] < 1e-5
        # random weights: the reference is degenerate and top-1 agreement is not used to pass
        assert case["accuracy"]["degenerate"].startswith("degenerate reference: 1 distinct class")
        top1 = next(c for c in case["accuracy"]["checks"] if c["metric"] == "top1_agreement")
        assert top1["status"] == "not-used"
        # the centred metrics decided instead
        centred = next(c for c in case["accuracy"]["checks"] if c["metric"] == "centered_rel_l2")
        assert centred["status"] == "passed" and centred["value"] < 1e-4
        assert len(case["latency"]["samples_ms"]) == 5
        assert case["latency"]["p90_ms"] is None  # 5 samples are too few for a p90
        paired = case["latency"]["paired"]
        assert len(paired["reference_ms"]) == len(paired["case_ms"]) == 8 and paired["blocks"] == 4
        assert f"backend {case['backend']}" in paired["reference"]
        # These cases are the reference network itself (ResNet-18, fp32, seeded weights) on the
        # same backend, so each pair's two calls do the same work; a reference on another
        # runtime (PyTorch for ONNX Runtime: ~3x slower here) would land far outside this band.
        ratios = sorted(c / r for c, r in zip(paired["case_ms"], paired["reference_ms"], strict=True))
        assert 0.7 < ratios[len(ratios) // 2] < 1.4, ratios
        assert case["conversion"]["export_s"] is not None
        # the share of the fp32 roof, which no case can pass (roof.py)
        assert case["latency"]["roof_dtype"] == "fp32"
        assert 0 < case["latency"]["peak_fraction"] <= 1
        assert case["latency"]["peak_basis"].startswith("fp32 roof")
        # which recipe ran, chosen by timing the backend's recipes (tuning.py)
        tuning = case["artifact"]["tuning"]
        assert tuning["recipe"] in tuning["offered"] and len(tuning["offered"]) >= 2
        assert case["latency"]["runtime"]["recipe"] == tuning["recipe"]
        assert all("median_ms" in t or "rejected" in t for t in tuning["trials"].values())
    assert cases["resnet18-fp32-none-onnxruntime-b1"]["size"]["artifact_files"].keys() == {"model.onnx", "model.onnx.data"}
    env = data["environment"]
    assert env["threads"] >= 1 and env["fingerprint"]["libraries"]["torch"]
    assert env["calibration"]["median_ms"] > 0
    roofs = env["roofs"]
    assert set(roofs) == {"fp32", "fp16", "bf16", "int8"}
    assert roofs["int8"]["gflops"] >= roofs["fp32"]["gflops"] > 0
    assert all(r["gflops"] >= (r["best_kernel"] or {"gflops": 0})["gflops"] for r in roofs.values())


@pytest.mark.slow
def test_second_run_builds_nothing(run_matrix):
    run_matrix(SMALL)
    result, _ = run_matrix(SMALL)
    result.stdout.fnmatch_lines(["cache: * (* hits, 0 builds)"])


def test_unsupported_combinations_are_skipped_with_reasons(run_matrix):
    matrix = """
matrix:
  arch: [resnet18]
  dtype: [int8, fp32]
  compression: [none, dynamic]
  backend: [openvino, cuda]
input_size: 32
claims: false
"""
    result, data = run_matrix(matrix, "-m", "size")
    cases = by_id(data)
    assert len(cases) == 8, "every combination is listed, none dropped"
    assert "int8 needs a quantization method" in cases["resnet18-int8-none-openvino-b1"]["reason"]
    assert "pairs with dtype int8" in cases["resnet18-fp32-dynamic-openvino-b1"]["reason"]
    assert "openvino has no int8-dynamic quantization path" in cases["resnet18-int8-dynamic-openvino-b1"]["reason"]
    assert "needs a CUDA GPU" in cases["resnet18-fp32-none-cuda-b1"]["reason"]
    assert cases["resnet18-fp32-none-openvino-b1"]["outcome"] == "passed"
    assert all(c["outcome"] == "skipped" for i, c in cases.items() if i != "resnet18-fp32-none-openvino-b1")


def test_a_size_only_run_times_no_recipe(run_matrix):
    # Found live: -m size timed every recipe of every case, and died where all of them overflowed fp16.
    matrix = ("matrix:\n  arch: [resnet18]\n  dtype: [fp32]\n  backend: [onnxruntime, openvino]\ninput_size: 32\n"
              "claims: false\n")
    result, data = run_matrix(matrix, "-m", "size")
    result.assert_outcomes(passed=2)
    for case in data["cases"]:
        tuning = case["artifact"]["tuning"]
        assert "only sizes" in tuning["how"] and "trials" not in tuning, case["id"]
        assert case["conversion"]["tuning_s"] == 0


def test_the_latency_reference_runs_the_cases_recipe(run_matrix):
    # Found live: tuning ran bf16 eager cases on mkldnn while their reference stayed on
    # channels_last, and the ratio of two kinds of kernels moved ~10% between processes.
    matrix = SMALL.replace("backend: [eager, onnxruntime]", "backend: [eager]") + "tuning: {recipes: {eager: mkldnn}}\n"
    result, data = run_matrix(matrix, "-m", "latency")
    result.assert_outcomes(passed=1)
    lat = data["cases"][0]["latency"]
    assert lat["runtime"]["recipe"] == "mkldnn"
    assert lat["paired"]["reference_key"].endswith("/mkldnn") and "recipe mkldnn" in lat["paired"]["reference"]


def test_slow_fp16_eager_checks_size_but_skips_running(run_matrix):
    matrix = "matrix:\n  arch: [resnet18]\n  dtype: [fp16]\n  backend: [eager]\ninput_size: 32\nclaims: false\n"
    result, data = run_matrix(matrix)
    result.assert_outcomes(passed=1, skipped=2)
    case = data["cases"][0]
    assert case["tests"]["size"] == "passed"
    assert "allow_slow: true" in case["reason"]
    assert case["size"]["formula_bytes"] < 11_689_512 * 2 * 1.01


def test_bad_matrix_is_a_usage_error_without_traceback(run_matrix):
    result, data = run_matrix("matrix:\n  arch: [resnet19]\n  backend: [eager]\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "m.yaml:2" in err and "'resnet19'" in err and "Did you mean 'resnet18'" in err
    assert "Traceback" not in err + result.stdout.str()
    assert data is None


@pytest.mark.slow
def test_runs_from_an_empty_directory_with_a_matrix_path(tmp_path, shared_cache):
    matrix = tmp_path / "elsewhere" / "m.yaml"
    matrix.parent.mkdir()
    matrix.write_text(SMALL)
    workdir = tmp_path / "empty"
    workdir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--matrix", str(matrix), "-q", "-m", "size", "-p", "no:cacheprovider",
         "--results", "out.json"],
        cwd=workdir, capture_output=True, text=True, env={**__import__("os").environ, "RESNETBENCH_CACHE": str(shared_cache)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((workdir / "out.json").read_text())
    assert {c["id"] for c in data["cases"]} == {"resnet18-fp32-none-eager-b1", "resnet18-fp32-none-onnxruntime-b1"}


def test_without_matrix_the_plugin_adds_nothing(pytester):
    pytester.makepyfile("def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "= resnetbench =" not in result.stdout.str(), "no resnetbench summary section without --matrix"


@pytest.mark.slow
def test_shard_splits_cases(run_matrix):
    matrix = "matrix:\n  arch: [resnet18, resnet34, resnet50]\n  backend: [eager]\nclaims: false\n"
    ids = []
    for k in (1, 2):
        result, _ = run_matrix(matrix, "--collect-only", "-q", "-m", "size", "--shard", f"{k}/2")
        ids.append({line.split("[", 1)[1] for line in result.outlines if "test_size[" in line})
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert len(ids[0] | ids[1]) == 3


@pytest.mark.slow
def test_claims_run_in_the_first_shard_only(run_matrix):
    matrix = "matrix:\n  arch: [resnet18, resnet34, resnet50]\n  backend: [eager]\n"  # claims on (the default)
    claims = {}
    for k in (1, 2, 3):
        result, _ = run_matrix(matrix, "--collect-only", "-q", "--shard", f"{k}/3")
        claims[k] = [line for line in result.outlines if "test_claim[" in line]
    assert len(claims[1]) == 9 and claims[2] == claims[3] == []


@pytest.mark.slow
def test_shards_balance_on_measured_durations(run_matrix, pytester):
    import json

    matrix = "matrix:\n  arch: [resnet18, resnet34, resnet50]\n  backend: [eager]\nclaims: false\n"
    durations = pytester.path / "durations.json"
    cases = [{"id": f"{a}-fp32-none-eager-b1", "arch": a, "dtype": "fp32", "compression": "none", "backend": "eager",
              "batch": 1, "outcome": "passed", "reason": "", "duration_s": d}
             for a, d in (("resnet18", 100.0), ("resnet34", 1.0), ("resnet50", 1.0))]
    durations.write_text(json.dumps({"schema_version": 1, "environment": {}, "cases": cases, "claims": []}))
    ids = []
    for k in (1, 2):
        result, _ = run_matrix(matrix, "--collect-only", "-q", "-m", "size", "--shard", f"{k}/2",
                               "--durations-path", str(durations))
        ids.append({line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_size[" in line})
    # measured: ResNet-18 took 100x the others, so it is a shard on its own (by FLOPs it would not be)
    assert ids == [{"resnet18-fp32-none-eager-b1"}, {"resnet34-fp32-none-eager-b1", "resnet50-fp32-none-eager-b1"}]
    result, _ = run_matrix(matrix, "--collect-only", "-q", "--shard", "1/2", "--durations-path", "nope.json")
    assert result.ret == 4 and "--durations-path" in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_a_plugin_adds_a_metric_to_each_case_record(run_matrix, pytester):
    pytester.makepyfile(metric_plugin="""
def pytest_resnetbench_case_record(case, record, built):
    record.extra["largest_file_bytes"] = max(built.files.values())
    record.extra["case_seen"] = case.id
""")
    matrix = "matrix:\n  arch: [resnet18]\n  backend: [eager, openvino]\n  dtype: [fp32, int8]\ninput_size: 32\nclaims: false\n"
    result, data = run_matrix(matrix, "-m", "size", "-p", "metric_plugin")
    assert result.ret == 0, result.stdout.str()[-2000:]
    cases = by_id(data)
    built = [c for c in cases.values() if c["outcome"] == "passed"]
    assert {c["id"] for c in built} == {"resnet18-fp32-none-eager-b1", "resnet18-fp32-none-openvino-b1"}
    for case in built:
        assert case["case_seen"] == case["id"]
        assert case["largest_file_bytes"] == max(case["size"]["artifact_files"].values())
    skipped = cases["resnet18-int8-none-eager-b1"]
    assert skipped["outcome"] == "skipped" and "case_seen" not in skipped
