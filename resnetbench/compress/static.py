"""Static (post-training) int8 quantization with calibration data.

Each backend implements the ``int8-static`` scheme with its own toolchain
(``backends/torch_quantize.py``: torch.ao FX; ``backends/onnx_quantize.py``: ONNX
Runtime QDQ), calibrated on ``calibration_samples`` images that are never evaluation
images (``data.calibration_set``).
"""

from __future__ import annotations

from resnetbench.compress.base import INT8_STATIC, Method
from resnetbench.settings import CALIBRATION_SAMPLES

METHOD = Method(
    "static",
    frozenset({"int8"}),
    quantization=INT8_STATIC,
    defaults={"calibration_samples": CALIBRATION_SAMPLES},
    # MLPerf Inference's closed-division rule on labelled data (>= 99% of fp32 top-1); the
    # output-level limits are the int8 dtype's (matrix.py says how they were measured).
    tolerances={"centered_cosine": 0.4, "spread_error": 0.5, "top1_drop_points": 1.0, "top1_ratio": 0.99},
    uses_dataset=True,
    settings_schema={
        "calibration_samples": {"type": "integer", "minimum": 1, "maximum": 100_000,
                                "description": "images the int8 activation ranges are calibrated on"},
    },
)
