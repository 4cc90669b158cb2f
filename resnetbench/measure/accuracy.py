"""Accuracy against a reference, with verdicts that can fail and fail only on evidence.

Every accuracy verdict is ``passed``, ``failed`` or ``undecidable`` (with the reason);
``undecidable`` is never counted as passed.

Why the output-level metrics are *centred*. A randomly initialised ResNet's logits are
dominated by a part that does not depend on the input: measured here on 32 synthetic
inputs, only 6% (ResNet-18) and 2.4% (ResNet-50) of the logits' energy is
``y - mean_batch(y)``. Raw cosine or relative L2 against such a reference mostly measures
that constant: a runner that returns the first image's logits for every image scored
cosine 0.9998 on ResNet-50. So the metrics that decide look at the input-dependent part:

- ``centered_cosine``: per input, the cosine between ``out - mu`` and ``ref - mu`` where
  ``mu`` is the reference's per-class mean over the batch, averaged over inputs. An
  input-ignoring runner scores ~0 (measured: -0.001 to 0.003, ResNet-18/50, 112 and 224),
  honest bf16 0.977-0.999, static int8 0.76-0.96 on random weights.
- ``centered_rel_l2``: ``|out - ref| / |ref - mu|``, the error against the size of
  what the input changes.
- ``spread_error``: ``|ln(|out - mean_batch(out)| / |ref - mu|)|``: an output that
  varies across inputs much less (constant, batch mean) or much more (noise) than the
  reference's does. Honest paths measured 0.000-0.42; an output that does not vary at
  all scores ln(1e12) = 27.6.

These need a reference whose outputs vary across inputs; one that does not makes them
``undecidable``.

Why agreement tolerances look at margins and at the number of inputs. Top-1 agreement
on 8 inputs is 0.875 after a single flip, and a flip on an input whose reference top-1
margin is smaller than the dtype's rounding error is not evidence about the backend.
So an input counts for agreement only when its reference logit margin (top-1 minus
top-2) exceeds ``2 * EXPECTED_REL_ERROR[dtype] * max|ref logit|`` (both logits may move
by that much), and the check fails only when the one-sided 95% Clopper-Pearson upper
bound of the agreement on those inputs is below the tolerance: the data must show that
agreement is below it. A check that could not fail even if every counted input
disagreed, or has no decisive input at all, carries no information and is ``not-used``
(the other checks decide; with none left the verdict is ``undecidable``). A reference that predicts one class for every input makes
agreement meaningless altogether (``not-used``, the centred metrics decide).

Task level (labelled data): top-1/top-5 with Wilson 95% intervals and the drop against
the fp32 uncompressed model on the same samples (points and ratio, the MLPerf rule).
They are ``undecidable`` when the reference's own top-1 is not above chance for its head
(labels that cannot match the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import beta, binomtest

from resnetbench.config import ACCURACY_METRICS

TINY_MARGIN = 1e-3  # softmax probability gap between the reference's top-2 classes
LABEL_METRICS = ("top1_drop_points", "top1_ratio")
AGREEMENT_METRICS = ("top1_agreement", "top5_overlap")
CENTERED_METRICS = ("centered_cosine", "centered_rel_l2", "spread_error")
# A reference whose input-dependent part is below this share of its energy does not vary
# across inputs (float noise only): the centred metrics cannot decide against it.
MIN_INPUT_DEPENDENCE = 1e-6
# Relative error a dtype's rounding is expected to cause, for telling near-ties from flips.
# fp32/fp16/bf16: torch.testing.assert_close's default rtol for the dtype
# (torch/testing/_comparison.py:96-100, torch 2.14.1: fp32 1.3e-6, fp16 1e-3, bf16 0.016).
# int8: no library default; static/dynamic int8 ResNets here have raw rel-L2 0.009-0.027
# against fp32 (ResNet-18/50, 112x112, ONNX Runtime, OpenVINO, eager): 0.05 bounds them.
EXPECTED_REL_ERROR = {"fp32": 1.3e-6, "fp16": 1e-3, "bf16": 0.016, "int8": 0.05}
MIN_SPREAD = 1e-12
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Check:
    """One metric against its tolerance.

    ``status``: ``passed`` | ``failed`` | ``undecidable`` (the metric applies but the data
    cannot decide it) | ``not-used`` (does not apply here: no labels, or agreement on a
    reference that predicts one class); ``why`` says why for the last two.
    """

    metric: str
    value: float | None
    op: str
    limit: float
    status: str
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _centered(out64: torch.Tensor, ref64: torch.Tensor) -> dict[str, float | None]:
    """The centred metrics (module docstring); None where the reference does not vary."""
    mu = ref64.mean(0, keepdim=True)
    ref_c, out_c = ref64 - mu, out64 - mu
    spread_ref = ref_c.norm()
    if not spread_ref > MIN_INPUT_DEPENDENCE * ref64.norm() or len(ref64) < 2:
        return dict.fromkeys(CENTERED_METRICS + ("input_dependence",))
    per_input = torch.nn.functional.cosine_similarity(out_c, ref_c, dim=1, eps=1e-30)
    spread_out = (out64 - out64.mean(0, keepdim=True)).norm()
    spread = (spread_out / spread_ref).item()
    return {
        "centered_cosine": per_input.mean().item(),
        "centered_rel_l2": ((out64 - ref64).norm() / spread_ref).item(),
        # floored so that results stay strict JSON: an output that never varies scores ln(1e12) = 27.6
        "spread_error": abs(math.log(max(spread, MIN_SPREAD))),
        "input_dependence": (spread_ref / ref64.norm().clamp_min(1e-30)).item(),
    }


def output_metrics(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float | None]:
    """Numerical, centred and agreement metrics of logits ``out`` against ``ref`` (same shape)."""
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
        **_centered(out64, ref64),
        "top1_agreement": (top_out[:, 0] == top_ref[:, 0]).double().mean().item(),
        "top5_overlap": overlap.mean().item(),
    }


def margins(ref: torch.Tensor) -> torch.Tensor:
    """Per input: softmax probability of the reference's top class minus the runner-up."""
    probs = ref.double().softmax(1)
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    return top2[:, 0] - top2[:, -1]


def decisive_inputs(ref: torch.Tensor, dtype: str) -> torch.Tensor:
    """Mask of inputs whose reference top-1 is further from the runner-up than ``dtype`` rounding moves logits."""
    ref64 = ref.double()
    top2 = ref64.topk(min(2, ref64.shape[1]), dim=1).values
    gap = top2[:, 0] - top2[:, -1]
    noise = 2 * EXPECTED_REL_ERROR.get(dtype, EXPECTED_REL_ERROR["fp32"]) * ref64.abs().amax(1)
    return gap > noise


def margin_summary(ref: torch.Tensor) -> dict[str, float]:
    m = margins(ref)
    q = torch.quantile(m, torch.tensor([0.1, 0.5], dtype=m.dtype))
    return {"min": m.min().item(), "p10": q[0].item(), "median": q[1].item(), "max": m.max().item()}


def degenerate_reason(ref: torch.Tensor) -> str | None:
    """Why ``ref``'s top-1 classes cannot discriminate (one class for all inputs, or tiny margins); None if they can."""
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


def agreement_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound of a proportion k/n."""
    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def agreement(out: torch.Tensor, ref: torch.Tensor, dtype: str) -> dict[str, Any]:
    """Top-1 agreement on the decisive inputs, with its upper bound."""
    mask = decisive_inputs(ref, dtype)
    same = out.argmax(1) == ref.argmax(1)
    n, k = int(mask.sum()), int((same & mask).sum())
    return {
        "decisive": n,
        "near_ties": int((~mask).sum()),
        "near_tie_flips": int((~same & ~mask).sum()),
        "agree": k,
        "value": k / n if n else None,
        "upper": agreement_upper(k, n) if n else None,
        "upper_if_none_agree": agreement_upper(0, n) if n else None,
    }


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
        "undecidable": None,
    }
    if wilson(ref_top1, n)[0] <= chance:
        result["undecidable"] = (
            f"the fp32 reference's own top-1 {ref_top1 / n:.1%} is not above chance ({chance:.1%} for"
            f" {out.shape[1]} classes): the labels cannot match the model's head"
        )
    return result


def _op(metric: str) -> str:
    return "<=" if ACCURACY_METRICS[metric][0] == "max" else ">="


def _check(metric: str, limit: float, values: dict[str, Any], task: dict[str, Any] | None,
           degenerate: str | None, agree: dict[str, Any]) -> Check:
    """One tolerance's check (module docstring for the rules)."""
    op, value = _op(metric), values.get(metric)
    if metric in LABEL_METRICS:
        if task is None:
            return Check(metric, None, op, limit, "not-used", "the dataset has no labels")
        if task["undecidable"]:
            return Check(metric, value, op, limit, "undecidable", task["undecidable"])
    if metric in AGREEMENT_METRICS and degenerate:
        return Check(metric, value, op, limit, "not-used", degenerate)
    if metric == "top1_agreement":
        # Top-1 that could not fail on these inputs carries no information: not used, like agreement
        # on a degenerate reference, so the output-level checks decide (and if none applies, the
        # verdict is undecidable because nothing passed).
        if not agree["decisive"]:
            return Check(metric, None, op, limit, "not-used",
                         "every input is a near-tie for this dtype: top-1 carries no information here")
        if agree["upper_if_none_agree"] >= limit:
            return Check(metric, agree["value"], op, limit, "not-used",
                         f"{agree['decisive']} decisive inputs cannot show agreement below {limit:g}")
        ok = agree["upper"] >= limit
        return Check(metric, agree["value"], op, limit, "passed" if ok else "failed",
                     f"{agree['agree']}/{agree['decisive']} decisive inputs agree, 95% upper bound"
                     f" {agree['upper']:.4f}; {agree['near_ties']} near-ties not counted")
    if value is None:
        why = "the reference's outputs do not vary across inputs" if metric in CENTERED_METRICS else "not computable"
        return Check(metric, None, op, limit, "undecidable", why)
    ok = value <= limit if op == "<=" else value >= limit
    return Check(metric, value, op, limit, "passed" if ok else "failed")


def evaluate(
    out: torch.Tensor,
    ref: torch.Tensor,
    tolerances: dict[str, float],
    labels: torch.Tensor | None = None,
    task_ref: torch.Tensor | None = None,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """All metrics, each tolerance's check and the verdict: failed > undecidable > passed."""
    metrics = output_metrics(out, ref)
    degenerate = degenerate_reason(ref)
    agree = agreement(out, ref, dtype)
    task = task_metrics(out, labels, task_ref if task_ref is not None else ref) if labels is not None else None
    values: dict[str, Any] = dict(metrics)
    if task is not None:
        values["top1_drop_points"] = task["drop_points"]
        values["top1_ratio"] = task["ratio"]
    checks = [_check(m, limit, values, task, degenerate, agree) for m, limit in tolerances.items()]
    statuses = {c.status for c in checks}
    if "failed" in statuses:
        verdict = "failed"
    elif "undecidable" in statuses or "passed" not in statuses:
        verdict = "undecidable"
    else:
        verdict = "passed"
    return {
        "metrics": metrics,
        "agreement": agree,
        "margin": margin_summary(ref),
        "degenerate": degenerate,
        "task": task,
        "tolerances": dict(tolerances),
        "checks": [c.to_dict() for c in checks],
        "verdict": verdict,
        "message": "" if verdict == "passed" else failure_message(checks, out, ref, verdict),
    }


def failure_message(checks: list[Check], out: torch.Tensor, ref: torch.Tensor, verdict: str, limit: int = 8) -> str:
    """Why the verdict is not ``passed``: the failing metrics and the samples that disagreed, or why nothing decides."""
    if verdict == "undecidable":
        reasons = "; ".join(f"{c.metric}: {c.why}" for c in checks if c.status in ("undecidable", "not-used"))
        return (f"undecidable: {reasons or 'no tolerances set'} (decidable with more inputs, dataset.samples, or "
                "trained weights, whose outputs vary across inputs; or a tolerance on a metric that applies)")
    lines = [f"{c.metric} = {c.value:.6g}, tolerance {c.op} {c.limit:g}" + (f" ({c.why})" if c.why else "")
             for c in checks if c.status == "failed" and c.value is not None]
    skipped = [f"{c.metric} not used ({c.why})" for c in checks if c.status in ("undecidable", "not-used")]
    disagree = (out.argmax(1) != ref.argmax(1)).nonzero().flatten()
    if disagree.numel():
        m = margins(ref)
        shown = ", ".join(f"#{int(i)} (ref margin {m[i].item():.3f})" for i in disagree[:limit])
        more = f" and {disagree.numel() - limit} more" if disagree.numel() > limit else ""
        lines.append(f"top-1 disagrees on {disagree.numel()}/{len(ref)} inputs: {shown}{more}")
    return "; ".join(lines + skipped)
