"""The edge backends, LiteRT (TFLite) and Core ML, through the same suite as every backend.

Real artifacts against their size formulas, LiteRT's parity and latency end to end,
Core ML sized everywhere and run only where Core ML exists (macOS); the damage each check
exists to catch (a quantizer that did nothing, a runner that ignores its input) turns
it red; a missing extra skips with the install command, and the gate counts a case that
newly skips for that reason as red.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
from conftest import by_id

from resnetbench.backends import get_backend
from resnetbench.backends.coreml import CoreMLBackend
from resnetbench.backends.litert import LiteRTBackend
from resnetbench.cli import main
from resnetbench.matrix import Case

PACKAGE = Path(__file__).resolve().parent.parent / "resnetbench"
EDGE_EXTRA = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer", "coremltools")


def _edge_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in EDGE_EXTRA)


needs_edge = pytest.mark.skipif(not _edge_installed(), reason="the edge extra is not installed: pip install -e '.[edge]'")


@pytest.mark.parametrize("base", [LiteRTBackend, CoreMLBackend])
def test_a_missing_extra_skips_with_the_install_command(base: type) -> None:
    missing = type("Missing", (base,), {"requires": ("resnetbench_no_such_module",)})()
    reason = missing.unsupported(Case("resnet18", "fp32", "none", base.name, 1))
    assert reason is not None and "pip install -e '.[edge]'" in reason and "resnetbench_no_such_module" in reason


def test_the_backends_are_registered_and_declare_their_capabilities() -> None:
    litert, coreml = get_backend("litert"), get_backend("coreml")
    assert isinstance(litert, LiteRTBackend) and isinstance(coreml, CoreMLBackend)
    assert litert.dtypes == {"fp32", "fp16", "int8"} and litert.quantization == {"int8-static", "int8-dynamic"}
    assert coreml.dtypes == {"fp32", "fp16", "int8"} and coreml.quantization == {"int8-dynamic"}
    # bf16 and Core ML static int8 are skipped with a reason, not dropped
    assert "bf16" in (litert.unsupported(Case("resnet18", "bf16", "none", "litert", 1)) or "")
    assert "int8-static" in (coreml.unsupported(Case("resnet18", "int8", "static", "coreml", 1)) or "")


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_coreml_says_why_it_cannot_run_here() -> None:
    reason = CoreMLBackend().cannot_run_here(Case("resnet18", "fp32", "none", "coreml", 1))
    assert reason is not None and "macOS" in reason and sys.platform in reason


def test_the_edge_backends_live_in_their_own_modules() -> None:
    """Adding them touched only their modules and the registry: no other module names them
    (claims.py measures the guide's edge claim on their artifacts, by name, as it does ONNX's;
    recommendations.py names the runtimes of the guide's edge advice, C10)."""
    allowed = {"backends/litert.py", "backends/coreml.py", "registries.py", "claims.py", "recommendations.py"}
    pattern = re.compile(r"litert|coreml|tflite|mlpackage|core ml", re.IGNORECASE)
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if str(p.relative_to(PACKAGE)) not in allowed and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_edge_matrix_validates() -> None:
    matrix = PACKAGE.parent / "matrices" / "edge.yaml"
    assert main(["validate", str(matrix)]) == 0


DAMAGED_CONFTEST = '''
from resnetbench.backends import register_backend
from resnetbench.backends.litert import LiteRTBackend
from resnetbench.matrix import Case
from resnetbench.tools.mutations import FirstImageRunner


class NoQuantize(LiteRTBackend):
    """A quantizer that silently did nothing: ships the fp32 flatbuffer as the int8 artifact."""

    name = "litert-noquant"

    def export(self, model, case, out, ctx):
        return super().export(model, Case(case.arch, "fp32", "none", case.backend, case.batch), out, ctx)


class FirstImage(LiteRTBackend):
    name = "litert-first"

    def load(self, *args, **kwargs):
        return FirstImageRunner(super().load(*args, **kwargs))


register_backend(NoQuantize())
register_backend(FirstImage())
'''

EDGE_MATRIX = """
matrix:
  arch: [resnet18]
  dtype: [fp32, fp16]
  compression: [none]
  backend: [litert, coreml]
  include:
    - {arch: resnet18, dtype: int8, compression: static, backend: litert}
    - {arch: resnet18, dtype: int8, compression: dynamic, backend: litert}
    - {arch: resnet18, dtype: int8, compression: dynamic, backend: coreml}
    - {arch: resnet50, dtype: fp32, backend: litert}
    - {arch: resnet18, dtype: int8, compression: static, backend: litert-noquant}
    - {arch: resnet18, dtype: int8, compression: static, backend: litert-first}
    # after LiteRT conversions in the same process: OpenVINO forks, which JAX (imported by
    # litert-torch) turns into an error-level warning unless the conversion runs in a child
    - {arch: resnet18, dtype: fp32, backend: openvino}
input_size: 32
dataset: {name: synthetic, samples: 16}
tolerances: {dtype: {fp32: {rel_l2: 1.0e-5}}}
compression_settings:
  static: {calibration_samples: 16}
latency: {warmup: 3, rounds: 10, pairs: 10, blocks: 5}
tuning: {enabled: false}  # recipe choice is tested in test_tuning.py
claims: false
"""


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict:
    """One real run of the small edge matrix (with two damaged LiteRT variants beside the honest ones)."""
    import os
    import subprocess

    work = tmp_path_factory.mktemp("edge")
    (work / "conftest.py").write_text(DAMAGED_CONFTEST)
    (work / "m.yaml").write_text(EDGE_MATRIX)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--matrix", "m.yaml", "--results", "results.json", "-p", "no:cacheprovider",
         "-p", "no:anyio", "-W", "error::ResourceWarning"],
        cwd=work, capture_output=True, text=True, env={**os.environ, "RESNETBENCH_CACHE": str(shared_cache)},
    )
    data = json.loads((work / "results.json").read_text())
    return {"proc": proc, "data": data, "cases": by_id(data), "dir": work}


@needs_edge
@pytest.mark.slow
def test_edge_run_outcomes(edge_run: dict) -> None:
    cases, out = edge_run["cases"], edge_run["proc"].stdout
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    expected = {"resnet18-fp32-none-litert-b1", "resnet18-fp16-none-litert-b1", "resnet18-int8-static-litert-b1",
                "resnet18-int8-dynamic-litert-b1", "resnet50-fp32-none-litert-b1", "resnet18-fp32-none-coreml-b1",
                "resnet18-fp16-none-coreml-b1", "resnet18-int8-dynamic-coreml-b1",
                "resnet18-int8-static-litert-noquant-b1", "resnet18-int8-static-litert-first-b1",
                "resnet18-fp32-none-openvino-b1"}
    assert set(cases) == expected
    for cid in expected - {"resnet18-int8-static-litert-noquant-b1", "resnet18-int8-static-litert-first-b1"}:
        assert cases[cid]["outcome"] == "passed", (cid, cases[cid]["reason"], out[-3000:])


@needs_edge
@pytest.mark.slow
@pytest.mark.parametrize("case_id,low,high", [
    # artifact / formula, measured 1.0003-1.0032 at 64x64 and 224x224 (README, "Edge runtimes")
    ("resnet18-fp32-none-litert-b1", 0.995, 1.005),
    ("resnet18-fp16-none-litert-b1", 0.995, 1.005),
    ("resnet18-int8-static-litert-b1", 0.99, 1.01),
    ("resnet18-int8-dynamic-litert-b1", 0.99, 1.01),
    ("resnet18-fp32-none-coreml-b1", 0.995, 1.005),
    ("resnet18-fp16-none-coreml-b1", 0.995, 1.005),
    ("resnet18-int8-dynamic-coreml-b1", 0.99, 1.01),
])
def test_edge_artifacts_match_their_formulas(edge_run: dict, case_id: str, low: float, high: float) -> None:
    size = edge_run["cases"][case_id]["size"]
    assert size["within_tolerance"] and low <= size["ratio"] <= high, size
    # against the independently known parameter count: fp32 ~4, fp16 ~2, int8 ~1 byte per parameter
    per_param = size["artifact_bytes"] / 11_689_512
    expected = {"fp32": 4, "fp16": 2, "int8": 1}[edge_run["cases"][case_id]["dtype"]]
    assert abs(per_param - expected) / expected < 0.02, per_param


@needs_edge
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_litert_fp32_parity_against_float64(edge_run: dict, arch: str) -> None:
    acc = edge_run["cases"][f"{arch}-fp32-none-litert-b1"]["accuracy"]
    assert acc["reference"] == "fp64-golden" and acc["metrics"]["rel_l2"] <= 1e-5, acc["metrics"]


@needs_edge
@pytest.mark.slow
def test_litert_latency_is_measured_with_its_options(edge_run: dict) -> None:
    for dtype, comp in (("fp32", "none"), ("fp16", "none"), ("int8", "static"), ("int8", "dynamic")):
        case = edge_run["cases"][f"resnet18-{dtype}-{comp}-litert-b1"]
        lat, runtime = case["latency"], case["artifact"]["runtime"]
        assert lat["median_ms"] > 0 and len(lat["samples_ms"]) == 10, lat
        assert runtime["num_threads"] == lat["threads"] and runtime["xnnpack_partitions"] >= 1, runtime
        assert runtime["input_dtype"] == ("int8" if comp == "static" else "float32")


@needs_edge
@pytest.mark.slow
def test_coreml_is_sized_everywhere_and_runs_only_on_macos(edge_run: dict) -> None:
    for dtype, comp in (("fp32", "none"), ("fp16", "none"), ("int8", "dynamic")):
        case = edge_run["cases"][f"resnet18-{dtype}-{comp}-coreml-b1"]
        assert case["artifact"]["runtime"]["compute_units"] == "CPU_ONLY"
        assert case["tests"]["size"] == "passed"
        if sys.platform != "darwin":
            assert case["tests"]["accuracy"] == case["tests"]["latency"] == "skipped"
            assert "only on macOS" in case["reason"]
        else:
            assert case["tests"]["accuracy"] == case["tests"]["latency"] == "passed"


@needs_edge
@pytest.mark.slow
def test_a_quantizer_that_did_nothing_fails_the_size_check(edge_run: dict) -> None:
    case = edge_run["cases"]["resnet18-int8-static-litert-noquant-b1"]
    assert case["tests"]["size"] == "failed" and case["size"]["ratio"] > 3.5, case["size"]
    assert case["outcome"] == "failed"


@needs_edge
@pytest.mark.slow
def test_a_litert_runner_that_ignores_its_input_fails_accuracy(edge_run: dict) -> None:
    case = edge_run["cases"]["resnet18-int8-static-litert-first-b1"]
    assert case["tests"]["accuracy"] == "failed" and case["accuracy"]["verdict"] == "failed"
    failed = {c["metric"] for c in case["accuracy"]["checks"] if c["status"] == "failed"}
    assert {"centered_cosine", "spread_error"} <= failed, case["accuracy"]["checks"]


@needs_edge
@pytest.mark.slow
def test_the_gate_counts_a_newly_missing_extra_as_red(edge_run: dict, tmp_path: Path, capsys) -> None:
    # Latency is left out: this small run's few timing pairs leave an A/A comparison
    # "inconclusive", which the fail-closed gate already reads as red.
    cases = [copy.deepcopy(c) for c in edge_run["data"]["cases"]
             if "-litert-" in c["id"] and "noquant" not in c["id"] and "first" not in c["id"]]
    for c in cases:
        c.pop("latency", None)
    base = {**edge_run["data"], "cases": cases}
    head = copy.deepcopy(base)
    missing = type("Missing", (LiteRTBackend,), {"requires": ("litert_torch_absent",)})()
    gone = next(c for c in head["cases"] if c["id"] == "resnet18-fp32-none-litert-b1")
    for key in ("size", "accuracy"):
        gone.pop(key, None)
    gone.update(outcome="skipped", reason=missing.unsupported(Case("resnet18", "fp32", "none", "litert", 1)),
                tests={"size": "skipped", "accuracy": "skipped", "latency": "skipped"})
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "head.json").write_text(json.dumps(head))
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "head.json")]) == 1
    out = capsys.readouterr().out
    assert "resnet18-fp32-none-litert-b1" in out and ".[edge]" in out, out


@pytest.mark.slow
def test_the_workflow_runs_core_ml_on_a_macos_shard_that_selects_exactly_its_cases(tmp_path: Path) -> None:
    """The part of the macOS shard Linux can rehearse: its runner is macOS, and its selection,
    run here, collects every Core ML case of the edge matrix and nothing else."""
    import subprocess

    import yaml

    from resnetbench.config import load_config
    from resnetbench.matrix import expand

    root = PACKAGE.parent
    job = yaml.safe_load((root / ".github/workflows/gate.yml").read_text())["jobs"]["edge"]
    shards = {s["shard"]: s for s in job["strategy"]["matrix"]["include"]}
    assert shards["macos"]["os"].startswith("macos-") and job["runs-on"] == "${{ matrix.os }}"
    head = next(s["run"] for s in job["steps"] if s.get("id") == "head")
    assert "matrices/edge.yaml ${{ matrix.select }}" in head and ".[openvino,edge]" in head
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--matrix", "matrices/edge.yaml", *shards["macos"]["select"].split(),
         "-m", "size or accuracy or latency", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--results", str(tmp_path / "results.json")],
        cwd=root, capture_output=True, text=True,
    )
    collected = {m.group(1) for m in re.finditer(r"test_\w+\[([^\]]+)\]", proc.stdout)}
    coreml = {c.id for c in expand(load_config(root / "matrices/edge.yaml")) if c.backend == "coreml"}
    assert len(coreml) == 6 and collected == coreml, proc.stdout[-2000:]


@needs_edge
@pytest.mark.slow
def test_the_guide_edge_size_claim_is_measured_on_the_edge_artifacts(shared_cache: Path) -> None:
    from resnetbench.cache import ArtifactCache
    from resnetbench.claims import CLAIMS, EXPECTED

    result = CLAIMS["C6"](ArtifactCache(shared_cache))
    sizes = result.details["sizes_mb"]
    assert result.details["not_measured"] == {}
    assert {what.split(" ", 1)[1] for what in sizes} == {"static QDQ ONNX", "LiteRT int8 .tflite",
                                                        "Core ML int8-weight .mlpackage"}
    for what, measured, known in result.checks:  # one byte per parameter, in every format
        assert measured == known, what
    assert all(6 <= mb <= 12 for what, mb in sizes.items() if what.startswith("resnet18"))
    assert all(mb > 20 for what, mb in sizes.items() if what.startswith("resnet34"))
    assert result.verdict == EXPECTED["C6"] == "refuted"
