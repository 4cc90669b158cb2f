"""One case's size (``test_size``): the real artifact's bytes against its size formula, and its
parameter count against the closed form, torchvision's figure and the guide's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resnetbench.backends.size import explain, size_record
from resnetbench.formulas import GUIDE_PARAMS_M, SPECS, TORCHVISION_PARAMS, count_resnet
from resnetbench.records import SizeRecord


@dataclass
class SizeMeasurement:
    """What the size test records, and why it fails (None: it passed)."""

    record: SizeRecord
    notes: list[str] = field(default_factory=list)
    failure: str | None = None


def measure_size(case: Any, built: Any) -> SizeMeasurement:
    inv = built.inventory
    scheme = built.method.quantization if case.dtype == "int8" else None
    budget = built.meta.get("budget") or {}  # int8-budget: its float layers and its weight scales
    formula = built.backend.size_formula(inv, case.dtype, scheme, budget.get("reverted_layers", ()),
                                         budget.get("per_channel"))
    rec = size_record(inv, formula, built.files, case.size_tolerance)
    spec = SPECS.get(case.arch)
    failure = None
    if built.method.removes_parameters:
        full = count_resnet(spec, built.fp32_model.fc.out_features).params if spec else None
        rec["params_before_pruning"] = full
        if full is not None and inv.params >= full:
            failure = f"{case.id}: structured pruning left the parameter count unchanged ({inv.params:,})"
    elif spec is not None:
        classes = built.fp32_model.fc.out_features
        closed_form = count_resnet(spec, classes).params
        if inv.params != closed_form:
            failure = f"{case.arch}: {inv.params:,} params, closed form says {closed_form:,}"
        elif classes == 1000 and inv.params != TORCHVISION_PARAMS[case.arch]:
            failure = f"{case.arch}: {inv.params:,} params, torchvision says {TORCHVISION_PARAMS[case.arch]:,}"
        elif classes == 1000 and round(inv.params / 1e6, 1) != GUIDE_PARAMS_M[case.arch]:
            failure = f"{case.arch}: {inv.params / 1e6:.1f}M params, the guide says {GUIDE_PARAMS_M[case.arch]}M"
    if failure is None and not rec["within_tolerance"]:
        failure = f"{case.id}: size: {explain(rec)}"
    return SizeMeasurement(SizeRecord.from_dict(rec), failure=failure)
