"""Static (post-training) int8 quantization with calibration data.

The quantization format and types are pinned because library defaults change between
versions: ONNX Runtime QDQ, uint8 asymmetric activations, int8 symmetric per-channel
weights, MinMax calibration (the combination ONNX Runtime recommends for x86 with
VNNI). PyTorch: torchao's pt2e flow is not part of torch 2.14 and torchao is not a
dependency, so the ``torch.ao`` FX graph-mode path with the x86 backend is used, and
each case records that choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.backends.base import BuildContext, Timer, record_warnings


class _Reader:
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


def quantize_onnx_static(src: Path, dst: Path, ctx: BuildContext, workdir: Path) -> dict[str, Any]:
    """``quant_pre_process`` then ``quantize_static`` to QDQ; returns timing and settings."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    assert ctx.calibration is not None, "static quantization needs calibration data"
    workdir.mkdir(exist_ok=True)
    pre = workdir / "pre.onnx"
    with Timer() as t:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _Reader("input", ctx.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    return {
        "quantize_s": t.seconds,
        "calibration_samples": int(len(ctx.calibration)),
        "quantizer": "onnxruntime.quantization.quantize_static(QDQ, per_channel, U8 act / S8 weight, MinMax)",
    }


def quantize_torch_static(model: nn.Module, ctx: BuildContext, notes: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """FX graph-mode PTQ with the x86 qconfig; returns the converted module."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    assert ctx.calibration is not None, "static quantization needs calibration data"
    example = (ctx.calibration[:1],)
    with Timer() as t, record_warnings(notes):
        torch.backends.quantized.engine = "x86"
        prepared = prepare_fx(model.eval(), get_default_qconfig_mapping("x86"), example)
        with torch.inference_mode():
            for i in range(0, len(ctx.calibration), 8):
                prepared(ctx.calibration[i : i + 8])
        quantized = convert_fx(prepared)
    notes.append("static int8 in PyTorch via torch.ao FX graph mode (x86 qconfig); torchao pt2e is not in torch 2.14")
    layers = [n for n, m in quantized.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    return quantized, {
        "quantize_s": t.seconds,
        "calibration_samples": int(len(ctx.calibration)),
        "quantized_layers": layers,
        "quantizer": "torch.ao.quantization.quantize_fx (x86, per-channel weights)",
    }
