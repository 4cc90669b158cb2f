"""Static int8 within an accuracy budget: the most sensitive layers go back to float until
the top-1 drop fits ``max_drop``.

The algorithm is NNCF's ``quantize_with_accuracy_control`` (rank, revert the worst, re-validate)
on the ONNX Runtime QDQ model that the ``static`` method makes, so the full-int8 and the
budgeted artifact differ only in the reverted layers (``backends/onnx_budget.py``). The
validation images that decide it are labelled and are neither calibration nor evaluation
images (``data.validation_set``); the case's accuracy test then measures the drop on the
evaluation images, which the search never saw.
"""

from __future__ import annotations

from resnetbench.compress.base import INT8_BUDGET, Method
from resnetbench.compress.static import METHOD as STATIC
from resnetbench.settings import CALIBRATION_SAMPLES

MAX_DROP_POINTS = 1.0  # NNCF's default max_drop is 0.01 absolute: one point of top-1
VALIDATION_SAMPLES = 300  # NNCF ranks on a subset of at most 300 items

METHOD = Method(
    "int8-budget",
    frozenset({"int8"}),
    quantization=INT8_BUDGET,
    defaults={"calibration_samples": CALIBRATION_SAMPLES, "max_drop": MAX_DROP_POINTS,
              "validation_samples": VALIDATION_SAMPLES, "per_channel": True},
    tolerances=STATIC.tolerances,
    uses_dataset=True,
    settings_schema={
        **(STATIC.settings_schema or {}),
        "max_drop": {"type": "number", "minimum": 0, "maximum": 100,
                     "description": "the largest top-1 drop allowed, in points, on the validation images"},
        "validation_samples": {"type": "integer", "minimum": 10, "maximum": 100_000,
                               "description": "labelled images that rank the layers and check the budget"},
        "per_channel": {"type": "boolean",
                        "description": "per-channel int8 weights (false: one scale per tensor, coarser)"},
    },
)
