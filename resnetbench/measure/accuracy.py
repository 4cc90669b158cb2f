"""Accuracy against a reference at two levels, with a check that the reference can discriminate.

Output level (always): relative L2 error, cosine similarity, max absolute error, top-1
agreement and top-5 overlap against reference logits on the same inputs.
Task level (labelled data): top-1/top-5 with Wilson 95% intervals and the drop against
the fp32 uncompressed model on the same samples (points and ratio, the MLPerf rule).

A reference that predicts one class for every input (a randomly initialised ResNet
does) makes top-1 agreement 100% whatever a backend does: such metrics are reported
as degenerate and never used to pass a case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import binomtest

from resnetbench.config import ACCURACY_METRICS

TINY_MARGIN = 1e-3  # softmax probability gap between the reference's top-2 classes
LABEL_METRICS = ("top1_drop_points", "top1_ratio")
AGREEMENT_METRICS = ("top1_agreement", "top5_overlap")


@dataclass(frozen=True)
class Check:
    """One metric against its tolerance; ``meaningful`` False means it cannot decide."""

    metric: str
    value: float | None
    op: str
    limit: float
    passed: bool
    meaningful: bool
    why_not: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def output_metrics(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Numerical and agreement metrics of logits ``out`` against ``ref`` (same shape)."""
    out64, ref64 = out.double(), ref.double()
    diff = out64 - ref64
    k = min(5, ref.shape[1])
    top_out = out64.topk(k, dim=1).indices
    top_ref = ref64.topk(k, dim=1).indices
    overlap = (top_out.unsqueeze(2) == top_ref.unsqueeze(1)).any(2).double().mean(1)
    cos = torch.nn.functional.cosine_similarity(out64, ref64, dim=1)
    return {
        "rel_l2": (diff.norm() / ref64.norm().clamp_min(1e-30)).item(),
        "cosine": cos.mean().item(),
        "cosine_min": cos.min().item(),
        "max_abs": diff.abs().max().item(),
        "top1_agreement": (top_out[:, 0] == top_ref[:, 0]).double().mean().item(),
        "top5_overlap": overlap.mean().item(),
    }


def margins(ref: torch.Tensor) -> torch.Tensor:
    """Per input: softmax probability of the reference's top class minus the runner-up."""
    probs = ref.double().softmax(1)
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    return top2[:, 0] - top2[:, -1]


def margin_summary(ref: torch.Tensor) -> dict[str, float]:
    m = margins(ref)
    q = torch.quantile(m, torch.tensor([0.1, 0.5], dtype=m.dtype))
    return {"min": m.min().item(), "p10": q[0].item(), "median": q[1].item(), "max": m.max().item()}


def degenerate_reason(ref: torch.Tensor) -> str | None:
    """Why ``ref`` cannot discriminate (one class for all inputs, or tiny margins); None if it can."""
    n, classes = ref.shape
    distinct = int(ref.argmax(1).unique().numel())
    needed = min(5, classes, max(2, n // 10))
    if distinct < needed:
        return f"degenerate reference: {distinct} distinct class{'es' if distinct != 1 else ''} in {n} inputs (need >= {needed})"
    if margins(ref).median().item() < TINY_MARGIN:
        return f"degenerate reference: median top-1 margin {margins(ref).median().item():.1e} < {TINY_MARGIN:g}"
    return None


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def task_metrics(out: torch.Tensor, labels: torch.Tensor, ref: torch.Tensor) -> dict[str, Any]:
    """Top-1/top-5 with intervals, and the drop against the reference model's accuracy."""
    n = int(labels.numel())
    k = min(5, out.shape[1])
    top1 = int((out.argmax(1) == labels).sum())
    top5 = int((out.topk(k, 1).indices == labels.unsqueeze(1)).any(1).sum())
    ref_top1 = int((ref.argmax(1) == labels).sum())
    chance = 1.0 / out.shape[1]
    result: dict[str, Any] = {
        "n": n,
        "top1": top1 / n,
        "top1_ci": wilson(top1, n),
        "top5": top5 / n,
        "top5_ci": wilson(top5, n),
        "fp32_top1": ref_top1 / n,
        "fp32_top1_ci": wilson(ref_top1, n),
        "drop_points": 100.0 * (ref_top1 - top1) / n,
        "ratio": top1 / ref_top1 if ref_top1 else None,
        "degenerate": None,
    }
    if wilson(ref_top1, n)[0] <= chance:
        result["degenerate"] = (
            f"degenerate reference: fp32 top-1 {ref_top1 / n:.1%} is not above chance ({chance:.0%})"
        )
    return result


def evaluate(
    out: torch.Tensor,
    ref: torch.Tensor,
    tolerances: dict[str, float],
    labels: torch.Tensor | None = None,
    task_ref: torch.Tensor | None = None,
) -> dict[str, Any]:
    """All metrics, the degenerate-reference verdict and each tolerance check."""
    metrics = output_metrics(out, ref)
    degenerate = degenerate_reason(ref)
    task = task_metrics(out, labels, task_ref if task_ref is not None else ref) if labels is not None else None
    values: dict[str, float | None] = dict(metrics)
    if task is not None:
        values["top1_drop_points"] = task["drop_points"]
        values["top1_ratio"] = task["ratio"]
    checks: list[Check] = []
    for metric, limit in tolerances.items():
        direction = ACCURACY_METRICS[metric][0]
        value = values.get(metric)
        why_not = ""
        if metric in LABEL_METRICS and task is None:
            why_not = "the dataset has no labels"
        elif metric in LABEL_METRICS and task is not None and task["degenerate"]:
            why_not = task["degenerate"]
        elif metric in AGREEMENT_METRICS and degenerate:
            why_not = degenerate
        if value is None and not why_not:
            why_not = "not computable"
        if why_not:
            checks.append(Check(metric, value, "<=" if direction == "max" else ">=", limit, False, False, why_not))
            continue
        assert value is not None
        ok = value <= limit if direction == "max" else value >= limit
        checks.append(Check(metric, value, "<=" if direction == "max" else ">=", limit, ok, True))
    meaningful = [c for c in checks if c.meaningful]
    failed = [c for c in meaningful if not c.passed]
    if failed:
        verdict = "failed"
    elif not meaningful:
        verdict = "failed"
    else:
        verdict = "passed"
    return {
        "metrics": metrics,
        "margin": margin_summary(ref),
        "degenerate": degenerate or (task or {}).get("degenerate"),
        "task": task,
        "tolerances": dict(tolerances),
        "checks": [c.to_dict() for c in checks],
        "verdict": verdict,
        "message": failure_message(checks, out, ref) if verdict == "failed" else "",
    }


def failure_message(checks: list[Check], out: torch.Tensor, ref: torch.Tensor, limit: int = 8) -> str:
    """Metric, tolerance and the samples that disagreed (indices with their reference margins)."""
    meaningful = [c for c in checks if c.meaningful]
    if not meaningful:
        reasons = "; ".join(f"{c.metric}: {c.why_not}" for c in checks) or "no tolerances set"
        return f"no accuracy metric can decide this case ({reasons})"
    lines = []
    for c in meaningful:
        if not c.passed:
            lines.append(f"{c.metric} = {c.value:.6g}, tolerance {c.op} {c.limit:g}")
    skipped = [f"{c.metric} not used ({c.why_not})" for c in checks if not c.meaningful]
    disagree = (out.argmax(1) != ref.argmax(1)).nonzero().flatten()
    if disagree.numel():
        m = margins(ref)
        shown = ", ".join(f"#{int(i)} (ref margin {m[i].item():.3f})" for i in disagree[:limit])
        more = f" and {disagree.numel() - limit} more" if disagree.numel() > limit else ""
        lines.append(f"top-1 disagrees on {disagree.numel()}/{len(ref)} inputs: {shown}{more}")
    return "; ".join(lines + skipped)
