"""End-to-end accuracy: corrupted backends fail, user architectures join in, task accuracy on digits."""

from __future__ import annotations

import pytest
from conftest import by_id

CORRUPT_CONFTEST = '''
import torch
from resnetbench.backends import register_backend
from resnetbench.backends.eager import EagerBackend, EagerRunner


class CorruptRunner(EagerRunner):
    """Eager outputs with the class axis permuted or noise added: a broken backend."""

    def to_logits(self, out):
        out = out.float()
        if self.mode == "permute":
            return out[:, torch.randperm(out.shape[1], generator=torch.Generator().manual_seed(0))]
        return out + torch.randn(out.shape, generator=torch.Generator().manual_seed(0)) * out.std()


def make(name, mode):
    class Corrupt(EagerBackend):
        def load(self, *args, **kwargs):
            runner = super().load(*args, **kwargs)
            corrupt = CorruptRunner(runner.model, runner.case, runner.channels_last)
            corrupt.mode = mode
            return corrupt

    Corrupt.name = name
    return Corrupt()


register_backend(make("eager-permuted", "permute"))
register_backend(make("eager-noisy", "noise"))
'''


def test_corrupted_backend_outputs_fail_accuracy(pytester, run_matrix):
    pytester.makeconftest(CORRUPT_CONFTEST)
    matrix = """
matrix:
  arch: [resnet18]
  backend: [eager, eager-permuted, eager-noisy]
input_size: 32
dataset: {name: synthetic, samples: 16}
tuning: {enabled: false}  # what is under test is the outputs, not recipe choice
claims: false
"""
    result, data = run_matrix(matrix, "-m", "accuracy")
    cases = by_id(data)
    assert cases["resnet18-fp32-none-eager-b1"]["outcome"] == "passed"
    for name in ("eager-permuted", "eager-noisy"):
        case = cases[f"resnet18-fp32-none-{name}-b1"]
        assert case["outcome"] == "failed"
        assert "rel_l2 = " in case["accuracy"]["message"] and "tolerance <= 0.0001" in case["accuracy"]["message"]
    result.stdout.fnmatch_lines(["resnet18-fp32-none-eager-permuted-b1: accuracy failed: rel_l2 = *, tolerance <= 0.0001*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.slow
def test_user_architecture_from_an_import_path(pytester, run_matrix):
    pytester.makepyfile(
        myarch='''
from torchvision.models.resnet import BasicBlock, ResNet


def tiny(num_classes=1000):
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
'''
    )
    matrix = """
matrix:
  arch: [tinyresnet]
  backend: [eager, onnxruntime]
architectures: {tinyresnet: "myarch:tiny"}
input_size: 32
dataset: {name: synthetic, samples: 8}
latency: {warmup: 1, rounds: 3}
tuning: {enabled: false}  # recipe choice is tested in test_tuning.py
claims: false
"""
    result, data = run_matrix(matrix)
    result.assert_outcomes(passed=6)
    cases = by_id(data)
    # BasicBlock [1,1,1,1]: independently counted below
    stem = 3 * 64 * 49 + 2 * 64
    blocks = 0
    inplanes = 64
    for planes in (64, 128, 256, 512):
        blocks += inplanes * planes * 9 + planes * planes * 9 + 4 * planes
        if planes != inplanes:
            blocks += inplanes * planes + 2 * planes
        inplanes = planes
    assert cases["tinyresnet-fp32-none-eager-b1"]["size"]["params"] == stem + blocks + 512 * 1000 + 1000


DIGITS = """
matrix:
  arch: [resnet18]
  dtype: [fp32]
  backend: [eager]
  include:
    - {{arch: resnet18, dtype: int8, compression: static, backend: onnxruntime{override}}}
weights: {{source: train, dataset: digits, epochs: 2}}
dataset: digits
input_size: 32
latency: {{warmup: 1, rounds: 3}}
compression_settings:
  static: {{calibration_samples: 64}}
tuning: {{enabled: false}}  # recipe choice is tested in test_tuning.py
claims: false
"""


@pytest.mark.slow
def test_digits_task_accuracy_and_a_tightened_tolerance_fails(run_matrix):
    result, data = run_matrix(DIGITS.format(override=""), "-m", "accuracy")
    cases = by_id(data)
    fp32 = cases["resnet18-fp32-none-eager-b1"]["accuracy"]
    int8 = cases["resnet18-int8-static-onnxruntime-b1"]["accuracy"]
    assert fp32["task"]["n"] == 359 and fp32["degenerate"] is None
    assert fp32["task"]["top1"] > 0.8, "two epochs on digits reach well above chance"
    low, high = int8["task"]["top1_ci"]
    assert low < int8["task"]["top1"] < high
    assert int8["task"]["fp32_top1"] == pytest.approx(fp32["task"]["top1"])
    assert cases["resnet18-int8-static-onnxruntime-b1"]["outcome"] == "passed", int8["message"]
    ratio = int8["task"]["ratio"]
    tight = f", tolerances: {{top1_ratio: {ratio + 0.01:.4f}}}"
    result, data = run_matrix(DIGITS.format(override=tight), "-m", "accuracy")
    case = by_id(data)["resnet18-int8-static-onnxruntime-b1"]
    assert case["outcome"] == "failed"
    assert f"top1_ratio = {ratio:.6g}" in case["accuracy"]["message"]
