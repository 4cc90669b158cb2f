"""Accuracy metrics and the degenerate-reference check, on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from resnetbench.measure.accuracy import degenerate_reason, evaluate, output_metrics, task_metrics, wilson


def logits(n: int = 64, classes: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, classes, generator=torch.Generator().manual_seed(seed)) * 3


def test_identical_outputs_have_zero_error_and_full_agreement():
    ref = logits()
    m = output_metrics(ref.clone(), ref)
    assert m["rel_l2"] == 0 and m["max_abs"] == 0
    assert m["cosine"] == pytest.approx(1.0)
    assert m["top1_agreement"] == 1.0 and m["top5_overlap"] == 1.0


def test_rel_l2_matches_a_hand_computation():
    ref = torch.tensor([[3.0, 4.0]])
    out = torch.tensor([[3.0, 4.5]])
    assert output_metrics(out, ref)["rel_l2"] == pytest.approx(0.5 / 5.0)


def test_permuted_class_axis_destroys_agreement():
    ref = logits()
    out = ref[:, torch.randperm(10, generator=torch.Generator().manual_seed(1))]
    m = output_metrics(out, ref)
    assert m["top1_agreement"] < 0.5


def test_constant_reference_is_degenerate():
    ref = torch.zeros(64, 1000)
    ref[:, 7] = 5.0
    ref += torch.randn(64, 1000, generator=torch.Generator().manual_seed(0)) * 0.01
    assert degenerate_reason(ref) == "degenerate reference: 1 distinct class in 64 inputs (need >= 5)"


def test_tiny_margins_are_degenerate():
    ref = torch.zeros(64, 10)
    ref[torch.arange(64), torch.arange(64) % 10] = 1e-6
    assert "median top-1 margin" in degenerate_reason(ref)


def test_discriminating_reference_is_not_degenerate():
    assert degenerate_reason(logits()) is None


def test_degenerate_reference_cannot_pass_on_agreement_alone():
    ref = torch.zeros(64, 1000)
    ref[:, 3] = 5.0
    result = evaluate(ref.clone(), ref, {"top1_agreement": 0.99})
    assert result["verdict"] == "failed"
    assert "no accuracy metric can decide" in result["message"]


def test_degenerate_reference_falls_back_to_numeric_metrics():
    ref = torch.zeros(64, 1000)
    ref[:, 3] = 5.0
    result = evaluate(ref * 1.5, ref, {"top1_agreement": 0.99, "rel_l2": 1e-4})
    assert result["verdict"] == "failed"
    assert "rel_l2 = 0.5" in result["message"]
    assert "top1_agreement not used (degenerate reference" in result["message"]


def test_failure_message_names_disagreeing_samples_and_margins():
    ref = logits()
    out = ref.clone()
    out[[2, 5]] = out[[2, 5]].flip(1)
    result = evaluate(out, ref, {"top1_agreement": 0.99})
    assert result["verdict"] == "failed"
    assert "top1_agreement = 0.96875, tolerance >= 0.99" in result["message"]
    assert "#2 (ref margin" in result["message"] and "#5 (ref margin" in result["message"]


def test_wilson_interval_matches_the_closed_form():
    k, n, z = 87, 100, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = wilson(k, n)
    assert low == pytest.approx(centre - half, abs=1e-9)
    assert high == pytest.approx(centre + half, abs=1e-9)


def test_task_metrics_drop_and_ratio():
    labels = torch.arange(100) % 10
    ref = torch.nn.functional.one_hot(labels, 10).float() * 5  # 100% correct
    out = ref.clone()
    out[:3] = out[:3].roll(1, dims=1)  # 3 wrong
    t = task_metrics(out, labels, ref)
    assert t["top1"] == 0.97 and t["fp32_top1"] == 1.0
    assert t["drop_points"] == pytest.approx(3.0)
    assert t["ratio"] == pytest.approx(0.97)
    assert t["degenerate"] is None


def test_chance_level_reference_makes_task_metrics_degenerate():
    labels = torch.arange(100) % 10
    ref = torch.zeros(100, 10)
    ref[:, 0] = 1.0  # always class 0: 10% = chance
    t = task_metrics(ref, labels, ref)
    assert t["degenerate"].startswith("degenerate reference: fp32 top-1 10.0%")


def test_tightened_drop_tolerance_fails():
    labels = torch.arange(100) % 10
    ref = torch.nn.functional.one_hot(labels, 10).float() * 5
    out = ref.clone()
    out[:2] = out[:2].roll(1, dims=1)
    ok = evaluate(out, ref, {"top1_drop_points": 3.0}, labels, ref)
    tight = evaluate(out, ref, {"top1_drop_points": 1.0}, labels, ref)
    assert ok["verdict"] == "passed" and tight["verdict"] == "failed"
    assert "top1_drop_points = 2, tolerance <= 1" in tight["message"]
