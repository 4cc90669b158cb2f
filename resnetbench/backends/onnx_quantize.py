"""ONNX Runtime's int8 paths (``onnxruntime.quantization``), used by the ONNX-based backends.

The quantization format and types are pinned because library defaults change between
versions. Dynamic: QInt8 weights, per-tensor (ConvInteger/MatMulInteger: unlike
PyTorch's, it quantizes Conv too). Static: QDQ, uint8 asymmetric activations, int8
symmetric per-channel weights, MinMax calibration (the combination ONNX Runtime
recommends for x86 with VNNI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetbench.backends.base import BuildContext, Timer
from resnetbench.formulas import QuantLayout

# How each path stores a model (measured against the artifacts it writes: tests/test_formulas.py).
LAYOUTS = {
    "int8-dynamic": QuantLayout(frozenset({"conv", "linear"}), False, 4, 1, 4, True,
                                "ORT dynamic: Conv/MatMul int8 per-tensor, fp32 bias, BN folded"),
    "int8-static": QuantLayout(frozenset({"conv", "linear"}), True, 4, 1, 4, True,
                               "ORT QDQ: int8 per-channel weights, fp32 scales + int8 zero points, int32 bias, BN folded"),
    # the same, with the layers the budget reverted stored in fp32 (their names come from the artifact)
    "int8-static-budget": QuantLayout(frozenset({"conv", "linear"}), True, 4, 1, 4, True,
                                      "ORT QDQ (int8-budget): int8 per-channel weights, fp32 scales + int8 zero "
                                      "points, int32 bias, BN folded; reverted layers fp32"),
}


def quantize_onnx_dynamic(src: Path, dst: Path) -> dict[str, Any]:
    """ONNX Runtime dynamic quantization, int8 weights (pinned: QInt8, per-tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with Timer() as t:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False)
    return {"quantize_s": t.seconds, "quantizer": "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8)"}


class CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator."""

    def __init__(self, name: str, images: torch.Tensor, batch: int = 8) -> None:
        self.batches = [images[i : i + batch].numpy() for i in range(0, len(images), batch)]
        self.name = name
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def static_quantize_options(per_channel: bool = True) -> dict[str, Any]:
    """``quantize_static``'s pinned options (module doc), shared with ``onnx_budget``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {"quant_format": QuantFormat.QDQ, "per_channel": per_channel, "activation_type": QuantType.QUInt8,
            "weight_type": QuantType.QInt8, "calibrate_method": CalibrationMethod.MinMax,
            "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True}}


def quantize_onnx_static(src: Path, dst: Path, ctx: BuildContext, workdir: Path) -> dict[str, Any]:
    """``quant_pre_process`` then ``quantize_static`` to QDQ; returns timing and settings."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    assert ctx.calibration is not None, "static quantization needs calibration data"
    workdir.mkdir(exist_ok=True)
    pre = workdir / "pre.onnx"
    with Timer() as t:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(dst), CalibrationReader("input", ctx.calibration), **static_quantize_options())
    return {
        "quantize_s": t.seconds,
        "calibration_samples": int(len(ctx.calibration)),
        "quantizer": "onnxruntime.quantization.quantize_static(QDQ, per_channel, U8 act / S8 weight, MinMax)",
    }
