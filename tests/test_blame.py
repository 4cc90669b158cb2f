"""Per-layer profiles and blame (backends/profile.py): a slowdown injected in one block is
blamed on that block, on eager PyTorch, ONNX Runtime, OpenVINO and TorchScript (both of
its recipes), and compare says where."""

from __future__ import annotations

import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from resnetbench.backends.base import DEFAULT_RECIPE
from resnetbench.backends.compile import CompileBackend, profiling_package
from resnetbench.backends.eager import EagerRunner
from resnetbench.backends.profile import (
    align_units,
    blame,
    format_blame,
    onnx_node_scopes,
    profile_onnxruntime,
    profile_openvino,
    profile_torch_module,
    profile_torch_ops,
    scope_path,
    torchscript_op_units,
    unit_of,
)
from resnetbench.compare.rules import compare_results
from resnetbench.matrix import Case

ARCH = '''
import os

import torch
from torchvision.models.resnet import BasicBlock, ResNet


class MaybeSlowBlock(BasicBlock):
    """A BasicBlock that, when ``extra`` > 0, runs its second convolution ``extra`` more times
    (scaled to nothing, so the outputs stay those of the plain block)."""

    extra = 0

    def forward(self, x):
        out = super().forward(x)
        for _ in range(self.extra):
            out = out + 1e-12 * torch.nn.functional.conv2d(out, self.conv2.weight, padding=1)
        return out


def tiny(num_classes=1000, slow_at=None, extra=None):
    model = ResNet(MaybeSlowBlock, [1, 1, 1, 1], num_classes=num_classes)
    slow_at = slow_at or os.environ.get("SLOW_AT")
    if slow_at:
        model.get_submodule(slow_at).extra = int(extra or os.environ.get("SLOW_EXTRA", "3"))
    return model
'''
BLOCKS = ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
CALLS = 30  # profiled calls per profile: 15 let host noise on this VM decide 1 trial in 10


def test_unit_names() -> None:
    assert [unit_of(p) for p in ("layer3.0.conv1", "layer3.0", "conv1", "fc", "")] == [
        "layer3.0", "layer3.0", "conv1", "fc", "(rest)"]


def test_blame_takes_the_machine_out_and_ranks_the_added_time() -> None:
    base = {"total_ms": 10.0, "units": [{"name": n, "ms": 2.0} for n in ("a", "b", "c", "d", "e")]}
    # the whole machine 20% slower, and unit c 1.0 ms slower on top
    head = {"total_ms": 13.0, "units": [{"name": n, "ms": 2.4 + (1.0 if n == "c" else 0)} for n in "abcde"]}
    result = blame(base, head)
    assert result["machine_factor"] == pytest.approx(1.2)
    assert result["units"][0]["name"] == "c" and result["units"][0]["added_ms"] == pytest.approx(1.0)
    assert result["units"][0]["share"] == pytest.approx(1.0)
    assert format_blame(result) == "c +1.00 ms (100%)"
    # a machine that only got slower blames nothing in particular
    assert blame(base, {"total_ms": 12.0, "units": [{"name": n, "ms": 2.4} for n in "abcde"]})["units"] == []


def test_torchscript_scopes_become_module_paths() -> None:
    assert scope_path("__module.layer1/__module.layer1.0/__module.layer1.0.conv1") == "layer1.0.conv1"
    assert scope_path("__module.fc") == "fc"
    assert scope_path("") == ""


def test_operators_that_ran_are_aligned_with_the_recorded_graph() -> None:
    recorded = [["aten::_convolution", "conv1"], ["aten::relu_", "relu"], ["aten::max_pool2d", "maxpool"],
                ["aten::_convolution", "layer1.0.conv1"], ["aten::relu_", "layer1.0.relu"],
                ["aten::_convolution", "layer1.0.conv2"], ["aten::add_", "layer1.0"],
                ["aten::adaptive_avg_pool2d", "avgpool"], ["aten::flatten", ""], ["aten::linear", "fc"]]
    # what the frozen graph runs: the same operators
    assert align_units(recorded, [k for k, _ in recorded]) == [u for _, u in recorded]
    # what optimize_for_inference runs: a layout conversion first, each prepacked convolution
    # seen only as its output's aten::empty, a dense conversion and linear as matmul + add
    ran = ["aten::to_mkldnn", "aten::empty", "aten::relu_", "aten::max_pool2d", "aten::empty", "aten::relu_",
           "aten::empty", "aten::add_", "aten::adaptive_avg_pool2d", "aten::to_dense", "aten::flatten",
           "aten::matmul", "aten::add"]
    assert align_units(recorded, ran) == ["conv1", "conv1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.relu",
                                          "layer1.0.conv2", "layer1.0", "avgpool", "avgpool", "", "fc", "fc"]


def test_backend_node_names_are_traced_back_to_exported_nodes() -> None:
    from resnetbench.backends.profile import _scope_of

    scopes = {"node_Conv_292": "conv1", "relu_1": "layer1.0.relu", "node_add_2": "layer3.0"}
    by_length = sorted(scopes, key=len, reverse=True)
    assert _scope_of("node_Conv_292", scopes, by_length) == "conv1"
    assert _scope_of("relu_1_nchwc", scopes, by_length) == "layer1.0.relu"  # ORT's layout transformer
    assert _scope_of("node_Conv_292_output_0_ReorderInput", scopes, by_length) == "conv1"  # ORT's inserts
    assert _scope_of("x_abcd_acdb_node_Conv_292", scopes, by_length) == "conv1"  # OpenVINO's reorders
    assert _scope_of("Multiply_2630", scopes, by_length) is None  # made by fusing: see originalLayersNames


def _tiny(module_dir: Path, slow_at: str | None, extra: int = 3) -> torch.nn.Module:
    import importlib
    import sys

    sys.path.insert(0, str(module_dir))
    try:
        arch = importlib.import_module("blame_arch")
        return arch.tiny(slow_at=slow_at, extra=extra).eval()
    finally:
        sys.path.remove(str(module_dir))


@pytest.fixture(scope="module")
def arch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("arch")
    (d / "blame_arch.py").write_text(ARCH)
    return d


def _export(model: torch.nn.Module, x: torch.Tensor, path: Path) -> Path:
    """The model's ONNX file at ``path``, exported once: a tag names one model (the base, or the
    base slowed at one block), so trials that draw the same block profile the same artifact, as
    the suite's cache would serve it; only the profiling is repeated."""
    import contextlib
    import io

    if path.exists():
        return path
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False)
    return path


def _profilers(x: torch.Tensor, tmp_path: Path) -> dict[str, Callable[[torch.nn.Module, str], dict[str, Any]]]:
    """backend -> profile(model, tag): each backend's own profiler on an artifact made as the suite makes it."""
    import numpy as np
    import onnxruntime as ort
    import openvino as ov

    from resnetbench.backends.onnxruntime import session_options

    def eager(model: torch.nn.Module, tag: str) -> dict[str, Any]:
        with torch.inference_mode():
            return profile_torch_module(model, lambda: model(x), calls=CALLS)

    def onnxruntime(model: torch.nn.Module, tag: str) -> dict[str, Any]:
        path = _export(model, x, tmp_path / f"{tag}.onnx")
        name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        feed = {name: np.ascontiguousarray(x.numpy())}
        return profile_onnxruntime(path, session_options(2), feed, ["CPUExecutionProvider"], calls=CALLS)

    def openvino(model: torch.nn.Module, tag: str) -> dict[str, Any]:
        path = _export(model, x, tmp_path / f"{tag}.onnx")  # the file ONNX Runtime profiles
        compiled = ov.Core().compile_model(ov.convert_model(str(path)), "CPU", {
            "PERF_COUNT": True, "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"})
        return profile_openvino(compiled, np.ascontiguousarray(x.numpy()), onnx_node_scopes(path), calls=CALLS)

    def torchscript(model: torch.nn.Module, tag: str, optimize: bool = False) -> dict[str, Any]:
        path = tmp_path / f"{tag}.ts"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notices
            frozen = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))
            recorded = torchscript_op_units(frozen.graph)
            torch.jit.save(frozen, str(path))
            loaded = torch.jit.load(str(path))
            if optimize:
                loaded = torch.jit.optimize_for_inference(loaded)

        def call() -> torch.Tensor:
            with torch.inference_mode():
                return loaded(x)

        return profile_torch_ops(call, recorded, calls=CALLS)

    compile_packages: dict[str, Any] = {}
    through_backend: list[str] = []

    def compile_(model: torch.nn.Module, tag: str) -> dict[str, Any]:
        # The first slowed model goes through the backend's own path (it compiles a package with
        # per-kernel profiling for the purpose). After that each model's package is compiled once
        # and profiled again in each trial that draws it, as the base's is: compiling is what costs
        # (~11 s a package here; compiling in all 10 trials took ~100 s of the test's ~190 s).
        if tag != "base" and not through_backend:
            through_backend.append(tag)
            case = Case("tiny", "fp32", "none", "compile", 1)
            profile = CompileBackend().profile(EagerRunner(None, case, channels_last=False), x,  # type: ignore[arg-type]
                                               model=model, entry=tmp_path, meta={}, threads=2,
                                               recipe=DEFAULT_RECIPE, calls=CALLS)
            assert profile is not None
            return profile
        if tag not in compile_packages:
            (tmp_path / tag).mkdir()
            compile_packages[tag] = profiling_package(model, x, tmp_path / tag)
        package, op_units = compile_packages[tag]

        def call() -> torch.Tensor:
            with torch.inference_mode():
                return package(x)

        return profile_torch_ops(call, op_units, calls=CALLS)

    return {"eager": eager, "onnxruntime": onnxruntime, "openvino": openvino, "torchscript": torchscript,
            "torchscript-optimized": lambda model, tag: torchscript(model, tag, optimize=True), "compile": compile_}


@pytest.mark.timing
@pytest.mark.slow
def test_the_injected_block_is_blamed_first_in_nine_of_ten_trials_on_every_profiled_backend(
        arch_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    base_model = _tiny(arch_dir, None)
    profilers = _profilers(x, tmp_path)
    hits = dict.fromkeys(profilers, 0)
    rng = random.Random(0)
    costs: dict[str, list[float]] = {backend: [] for backend in profilers}
    trials = []
    for _ in range(10):
        block = rng.choice(BLOCKS)
        slow = _tiny(arch_dir, block)
        slow.load_state_dict(base_model.state_dict())
        for backend, profile in profilers.items():
            # base and head profiled back to back, as close in the machine's state as two runs get
            base = profile(base_model, "base")
            head = profile(slow, f"slow-{block}")
            result = blame(base, head)
            costs[backend].append(head["cost_s"])
            first = result["units"][0]["name"] if result["units"] else None
            hits[backend] += first == block
            trials.append((backend, block, first, format_blame(result)))
    print("blame hits per backend (of 10):", hits, "cost_s max:", {b: max(c) for b, c in costs.items()})
    assert all(n >= 9 for n in hits.values()), (hits, trials)
    # profiling costs seconds, not minutes; compile's includes compiling its profiling package
    assert max(max(c) for backend, c in costs.items() if backend != "compile") < 10
    assert max(costs["compile"]) < 120


@pytest.mark.timing
@pytest.mark.slow
def test_compare_names_the_block_that_got_slower(pytester: Any, run_matrix: Any, arch_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(arch_dir / "blame_arch.py", pytester.path / "blame_arch.py")
    matrix = """
matrix:
  arch: [tiny]
  backend: [eager, onnxruntime, openvino, torchscript]
architectures: {tiny: "blame_arch:tiny"}
input_size: 64
dataset: {name: synthetic, samples: 8}
profile: {calls: 15}
# every recipe pinned: base and head use separate caches, so tuning would choose again in the
# head, and a recipe change is never decided on ratios (compare: inconclusive, fail-closed)
tuning: {recipes: {eager: channels_last, onnxruntime: run, openvino: hint, torchscript: optimize_for_inference}}
claims: false
"""
    _, base = run_matrix(matrix, "-m", "latency")
    for case in base["cases"]:
        profile = case["latency"]["profile"]
        names = {u["name"] for u in profile["units"]}
        assert set(BLOCKS) <= names, names
        assert profile["total_ms"] > 0 and profile["cost_s"] > 0
    # the slowed architecture builds other artifacts: a cache of its own
    monkeypatch.setenv("RESNETBENCH_CACHE", str(pytester.path / "slow-cache"))
    monkeypatch.setenv("SLOW_AT", "layer3.0")
    monkeypatch.setenv("SLOW_EXTRA", "6")
    _, head = run_matrix(matrix, "-m", "latency")
    for record in compare_results(base, head):
        assert record["decision"] == "regressed", record["reason"]
        assert record["blame"]["units"][0]["name"] == "layer3.0", record["blame"]
        assert "where: layer3.0 +" in record["reason"]
