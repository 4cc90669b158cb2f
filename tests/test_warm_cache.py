"""A warm run reads what is deterministic from the cache, and nothing that could hide damage."""

from __future__ import annotations

import pytest
from conftest import by_id

MATRIX = """
matrix:
  arch: [resnet18]
  dtype: [fp32, bf16]
  backend: [eager, onnxruntime]
input_size: 32
dataset: {name: synthetic, samples: 8}
claims: false
"""
# The damage: ONNX Runtime's runner keeps its class, module and artifact, but a method
# patched at run time returns the first image's logits for every image.
PATCHED_RUNNER = '''
from resnetbench.backends.onnxruntime import OrtBoundRunner, OrtRunner

original = OrtRunner.to_logits


def first_image_logits(self, out):
    if not hasattr(self, "first"):  # batch 1: the first call's logits, for every later image
        self.first = original(self, out)
    return self.first.clone()


OrtRunner.to_logits = first_image_logits
OrtBoundRunner.to_logits = first_image_logits  # the IOBinding recipe's runner too
'''


def _accuracy(data):
    return {i: c["accuracy"] for i, c in by_id(data).items()}


@pytest.mark.slow
def test_warm_accuracy_reads_cached_outputs_with_the_same_verdicts(pytester, run_matrix, shared_cache):
    result, cold = run_matrix(MATRIX, "-m", "accuracy")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result, warm = run_matrix(MATRIX, "-m", "accuracy")
    assert result.ret == 0
    cold_acc, warm_acc = _accuracy(cold), _accuracy(warm)
    assert len(warm_acc) == 4 and all(a["outputs_cached"] for a in warm_acc.values())
    for case_id, acc in cold_acc.items():
        assert {**acc, "outputs_cached": True} == warm_acc[case_id], case_id
    # the golden and fp32 references are cache entries too
    assert {p.name.split("-")[1] for p in (shared_cache / "references").glob("resnet18-*")} >= {"fp64", "fp32"}

    result, fresh = run_matrix(MATRIX, "-m", "accuracy", "--fresh-outputs")
    assert result.ret == 0
    assert not any(a["outputs_cached"] for a in _accuracy(fresh).values())


@pytest.mark.slow
def test_a_patched_runner_is_not_served_outputs_cached_from_the_clean_run(pytester, run_matrix):
    result, _ = run_matrix(MATRIX, "-m", "accuracy")
    assert result.ret == 0
    pytester.makeconftest(PATCHED_RUNNER)
    result, damaged = run_matrix(MATRIX, "-m", "accuracy")
    assert result.ret == 1
    acc = _accuracy(damaged)
    for case_id, a in acc.items():
        if "onnxruntime" in case_id:
            assert a["verdict"] == "failed" and a["outputs_cached"] is False, case_id
        else:
            assert a["verdict"] == "passed" and a["outputs_cached"] is True, case_id
