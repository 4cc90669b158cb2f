"""One case's accuracy: its outputs on the accuracy inputs against its reference (``test_accuracy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from resnetbench import quiet
from resnetbench.measure.accuracy import evaluate
from resnetbench.measure.accuracy_reference import reference_for
from resnetbench.measure.outputs import case_outputs
from resnetbench.records import AccuracyRecord


@dataclass
class AccuracyMeasurement:
    """What the accuracy test records, and why it fails (None: it passed)."""

    record: AccuracyRecord
    notes: list[str] = field(default_factory=list)
    failure: str | None = None


def measure_accuracy(case: Any, built: Any, state: Any) -> AccuracyMeasurement:
    """Evaluate the case against its reference; fail closed: a verdict other than passed fails."""
    with quiet.shared(state.cache.root):
        ref = reference_for(state.config, case, state.cache, state.memo)
        out, outputs_cached = case_outputs(built, ref.inputs, state)
    expected_shape = tuple(ref.logits.shape)
    if tuple(out.shape) != expected_shape:
        return AccuracyMeasurement(
            AccuracyRecord(verdict="failed", message=f"output shape {tuple(out.shape)} != {expected_shape}"),
            failure=f"{case.id}: output shape {tuple(out.shape)}, expected {expected_shape}")
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        return AccuracyMeasurement(AccuracyRecord(verdict="failed", message=f"{bad} non-finite outputs (NaN/Inf)"),
                                   failure=f"{case.id}: {bad} outputs are NaN or Inf")
    result = evaluate(out, ref.logits, case.tolerances, ref.inputs.labels, ref.fp32_logits, case.dtype)
    result["reference"] = ref.kind
    result["outputs_cached"] = outputs_cached
    result["dataset"] = ref.inputs.describe()
    notes = [f"{result['degenerate']}: agreement metrics not used"] if result["degenerate"] else []
    # Fail closed: an accuracy test that cannot decide is not a pass.
    failure = None if result["verdict"] == "passed" else f"{case.id}: accuracy {result['verdict']}: {result['message']}"
    return AccuracyMeasurement(AccuracyRecord.from_dict(result), notes, failure)
