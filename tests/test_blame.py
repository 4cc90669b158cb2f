"""Per-layer profiles and blame (measure/profile.py): a slowdown injected in one block is
blamed on that block, on eager PyTorch and on ONNX Runtime, and compare says where."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from resnetbench.compare.rules import compare_results
from resnetbench.measure.profile import blame, format_blame, profile_onnxruntime, profile_torch_module, unit_of

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
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False)
    return path


@pytest.mark.slow
def test_the_injected_block_is_blamed_first_in_nine_of_ten_trials_on_two_backends(arch_dir: Path,
                                                                                   tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    from resnetbench.backends.onnxruntime import session_options

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    base_model = _tiny(arch_dir, None)
    base_onnx = _export(base_model, x, tmp_path / "base.onnx")
    feed = {"x": np.ascontiguousarray(x.numpy())}
    names = {"eager": 0, "onnxruntime": 0}
    rng = random.Random(0)
    costs = []

    def eager_profile(model: torch.nn.Module) -> dict[str, Any]:
        with torch.inference_mode():
            return profile_torch_module(model, lambda: model(x), calls=15)

    def ort_profile(path: Path) -> dict[str, Any]:
        name = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        return profile_onnxruntime(path, session_options(2), {name: feed["x"]}, ["CPUExecutionProvider"], calls=15)

    trials = []
    for trial in range(10):
        block = rng.choice(BLOCKS)
        slow = _tiny(arch_dir, block)
        slow.load_state_dict(base_model.state_dict())
        slow_onnx = _export(slow, x, tmp_path / f"slow{trial}.onnx")
        for backend, (b, h) in {
            "eager": (eager_profile(base_model), eager_profile(slow)),
            "onnxruntime": (ort_profile(base_onnx), ort_profile(slow_onnx)),
        }.items():
            result = blame(b, h)
            costs.append(h["cost_s"])
            first = result["units"][0]["name"] if result["units"] else None
            names[backend] += first == block
            trials.append((backend, block, first, format_blame(result)))
    assert names["eager"] >= 9 and names["onnxruntime"] >= 9, trials
    assert max(costs) < 10


@pytest.mark.slow
def test_compare_names_the_block_that_got_slower(pytester: Any, run_matrix: Any, arch_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(arch_dir / "blame_arch.py", pytester.path / "blame_arch.py")
    matrix = """
matrix:
  arch: [tiny]
  backend: [eager, onnxruntime]
architectures: {tiny: "blame_arch:tiny"}
input_size: 64
dataset: {name: synthetic, samples: 8}
profile: {calls: 15}
tuning: {recipes: {eager: channels_last}}
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
