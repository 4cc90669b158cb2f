"""Dynamic int8 quantization: weights quantized ahead, activations at run time.

Each backend implements the ``int8-dynamic`` scheme with its own toolchain
(``backends/torch_quantize.py``, ``backends/onnx_quantize.py``). PyTorch's only
quantizes Linear (on a ResNet, fc alone); ONNX Runtime's also quantizes Conv.
"""

from __future__ import annotations

from resnetbench.compress.base import INT8_DYNAMIC, Method

METHOD = Method(
    "dynamic",
    frozenset({"int8"}),
    quantization=INT8_DYNAMIC,
    # int8 too, so MLPerf's 99% rule holds as for static; measured centred cosine 0.79
    # (ResNet-50 at 224: only fc is quantized, but the input-dependent part is small)
    tolerances={"centered_cosine": 0.6, "spread_error": 0.4, "top1_agreement": 0.95,
                "top1_drop_points": 1.0, "top1_ratio": 0.99},
    settings_schema={},  # nothing to set: each backend's toolchain decides what it quantizes
)
