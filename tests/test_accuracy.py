"""Accuracy metrics and the degenerate-reference check, on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from resnetbench.config import Config
from resnetbench.matrix import tolerances_for
from resnetbench.measure.accuracy import (
    agreement_upper,
    degenerate_reason,
    evaluate,
    output_metrics,
    task_metrics,
    wilson,
)


def config(matrix):
    from pathlib import Path

    return Config(path=Path("m.yaml"), matrix=matrix)


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
    assert result["verdict"] == "undecidable"
    assert result["message"].startswith("undecidable: top1_agreement: degenerate reference")


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
    out[[2, 5, 7, 9]] = out[[2, 5, 7, 9]].flip(1)
    result = evaluate(out, ref, {"top1_agreement": 0.99})
    assert result["verdict"] == "failed"
    assert "top1_agreement = 0.9375, tolerance >= 0.99 (60/64 decisive inputs agree" in result["message"]
    assert "#2 (ref margin" in result["message"] and "#5 (ref margin" in result["message"]


# --- input-ignoring runners against a reference dominated by an input-independent part ---


def random_resnet_like(n: int = 32, classes: int = 1000, dependence: float = 0.03, seed: int = 0) -> torch.Tensor:
    """Logits shaped like a random ResNet's: a large part shared by every input, a small part that is not."""
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(1, classes, generator=gen) * 2
    return shared + dependence * 2 * torch.randn(n, classes, generator=gen)


def broken(kind: str, ref: torch.Tensor) -> torch.Tensor:
    if kind == "first-image":
        return ref[:1].expand_as(ref).clone()
    if kind == "batch-mean":
        return ref.mean(0, keepdim=True).expand_as(ref).clone()
    if kind == "permuted-inputs":
        return ref.roll(1, dims=0)
    if kind == "permuted-classes":
        return ref[:, torch.randperm(ref.shape[1], generator=torch.Generator().manual_seed(1))]
    # noise twice the size of the input-dependent part
    centred = ref - ref.mean(0, keepdim=True)
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))
    return ref + noise * 2 * centred.norm() / noise.norm()


KINDS = ("first-image", "batch-mean", "permuted-inputs", "permuted-classes", "noise")


def test_raw_cosine_cannot_tell_an_input_ignoring_runner():
    """Why the centred metrics exist: the raw cosine of a first-image runner is ~0.999."""
    ref = random_resnet_like()
    assert output_metrics(broken("first-image", ref), ref)["cosine"] > 0.998


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
def test_input_ignoring_or_scrambled_runner_fails_every_default(kind, dtype):
    ref = random_resnet_like()
    result = evaluate(broken(kind, ref), ref, tolerances_for(config({"arch": ["resnet18"]}), dtype,
                                                             "static" if dtype == "int8" else "none"), dtype=dtype)
    assert result["verdict"] == "failed", result["checks"]


@pytest.mark.parametrize(("dtype", "rel_noise"), [("fp32", 1e-7), ("fp16", 5e-4), ("bf16", 4e-3), ("int8", 2e-2)])
def test_honest_rounding_error_passes_the_defaults(dtype, rel_noise):
    """Error of the size each dtype measured on real random ResNets (raw rel-L2) passes."""
    ref = random_resnet_like(dependence=0.05)
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    out = ref + noise * rel_noise * ref.norm() / noise.norm()
    tol = tolerances_for(config({"arch": ["resnet18"]}), dtype, "static" if dtype == "int8" else "none")
    result = evaluate(out, ref, tol, dtype=dtype)
    assert result["verdict"] == "passed", result["checks"]


def test_reference_that_does_not_vary_leaves_centred_metrics_undecidable():
    ref = torch.randn(1, 10).expand(16, 10).clone()
    result = evaluate(ref.clone(), ref, {"centered_cosine": 0.9})
    assert result["verdict"] == "undecidable"
    assert "do not vary across inputs" in result["message"]


# --- agreement: near-ties and the number of inputs ---


def eight_inputs_with_one_near_tie() -> torch.Tensor:
    ref = torch.zeros(8, 10)
    ref[torch.arange(8), torch.arange(8)] = 4.0
    ref[0, 9] = 4.0 - 1e-3  # input 0: the runner-up is 1e-3 away, far inside bf16's rounding
    return ref


def test_a_near_tie_flip_is_not_evidence():
    ref = eight_inputs_with_one_near_tie()
    out = ref.clone()
    out[0, 9] += 2e-3  # flips input 0
    result = evaluate(out, ref, {"top1_agreement": 0.99}, dtype="bf16")
    assert result["verdict"] == "passed"
    assert result["agreement"] == {"decisive": 7, "near_ties": 1, "near_tie_flips": 1, "agree": 7, "value": 1.0,
                                   "upper": 1.0, "upper_if_none_agree": pytest.approx(1 - 0.05 ** (1 / 7))}


def test_decisive_flips_fail_when_the_data_show_agreement_below_the_tolerance():
    ref = eight_inputs_with_one_near_tie()
    one, two = ref.clone(), ref.clone()
    one[1] = one[1].roll(1)
    two[1:3] = two[1:3].roll(1, dims=1)
    # 6/7 agree: the one-sided 95% upper bound is 0.9927 >= 0.99, one flip in 7 cannot show less
    assert evaluate(one, ref, {"top1_agreement": 0.99}, dtype="bf16")["verdict"] == "passed"
    result = evaluate(two, ref, {"top1_agreement": 0.99}, dtype="bf16")
    assert result["verdict"] == "failed"
    assert "5/7 decisive inputs agree" in result["message"]


def test_agreement_that_could_not_fail_alone_is_undecidable():
    ref = logits(n=2)
    result = evaluate(ref.clone(), ref, {"top1_agreement": 0.5})
    assert result["verdict"] == "undecidable"
    assert result["checks"][0]["status"] == "not-used"
    assert "2 decisive inputs cannot show agreement below 0.5" in result["message"]
    assert "more inputs" in result["message"]  # says what would make it decidable


def all_near_ties(n: int = 8) -> torch.Tensor:
    """Inputs that vary, each with a runner-up within bf16 rounding of its top-1 (a random ResNet at 112 px)."""
    ref = logits(n=n)
    top = ref.argmax(1)
    runner_up = (top + 1) % ref.shape[1]
    ref[torch.arange(n), runner_up] = ref[torch.arange(n), top] - 0.02  # < 2 x 0.016 x max|logit|
    return ref


def test_all_near_ties_leave_top1_unused_and_the_output_checks_decide():
    # Found live: ci-local with base = head failed bf16 cases on both sides, "every input is a
    # near-tie", while centred cosine read 0.997 against 0.85.
    ref = all_near_ties()
    tolerances = {"top1_agreement": 0.99, "centered_cosine": 0.85}
    honest = evaluate(ref + 1e-4 * torch.randn_like(ref), ref, tolerances, dtype="bf16")
    assert honest["agreement"]["decisive"] == 0
    assert [c["status"] for c in honest["checks"]] == ["not-used", "passed"]
    assert honest["verdict"] == "passed"
    constant = evaluate(ref[:1].expand_as(ref).clone(), ref, tolerances, dtype="bf16")
    assert constant["verdict"] == "failed"  # an input-ignoring runner still fails on the output checks
    alone = evaluate(ref.clone(), ref, {"top1_agreement": 0.99}, dtype="bf16")
    assert alone["verdict"] == "undecidable" and "near-tie" in alone["message"]


def test_clopper_pearson_upper_bound():
    assert agreement_upper(8, 8) == 1.0
    assert agreement_upper(0, 10) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert agreement_upper(7, 8) == pytest.approx(0.99360, abs=1e-5)


def test_label_metrics_without_labels_alone_are_undecidable():
    ref = logits()
    result = evaluate(ref.clone(), ref, {"top1_drop_points": 1.0})
    assert result["verdict"] == "undecidable"
    assert "the dataset has no labels" in result["message"]


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
    assert t["undecidable"] is None


def test_chance_level_reference_makes_task_metrics_undecidable():
    labels = torch.arange(100) % 10
    ref = torch.zeros(100, 10)
    ref[:, 0] = 1.0  # always class 0: 10% = chance
    t = task_metrics(ref, labels, ref)
    assert t["undecidable"].startswith("the fp32 reference's own top-1 10.0% is not above chance (10.0% for 10 classes)")
    result = evaluate(ref.clone(), ref, {"top1_drop_points": 1.0}, labels, ref)
    assert result["verdict"] == "undecidable"


def test_labels_that_cannot_match_the_head_are_undecidable_not_passed():
    """Two ImageNet class folders labelled 0 and 1 (folder index): the model never predicts them."""
    labels = torch.tensor([0, 1] * 10)
    ref = logits(n=20, classes=1000)
    ref[:, 500] += 100  # predicts class 500 for everything
    result = evaluate(ref.clone(), ref, {"top1_drop_points": 1.0, "top1_ratio": 0.99}, labels, ref)
    assert result["verdict"] == "undecidable"
    assert all(c["status"] == "undecidable" for c in result["checks"])


def test_tightened_drop_tolerance_fails():
    labels = torch.arange(100) % 10
    ref = torch.nn.functional.one_hot(labels, 10).float() * 5
    out = ref.clone()
    out[:2] = out[:2].roll(1, dims=1)
    ok = evaluate(out, ref, {"top1_drop_points": 3.0}, labels, ref)
    tight = evaluate(out, ref, {"top1_drop_points": 1.0}, labels, ref)
    assert ok["verdict"] == "passed" and tight["verdict"] == "failed"
    assert "top1_drop_points = 2, tolerance <= 1" in tight["message"]
