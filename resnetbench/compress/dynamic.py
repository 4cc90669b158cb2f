"""Dynamic int8 quantization: weights quantized ahead, activations at run time.

PyTorch's ``quantize_dynamic`` only has dynamic kernels for Linear (and RNNs): on a
ResNet it touches the final fc layer alone, which is why the guide's "1/4 of the size"
does not happen. ONNX Runtime's ``quantize_dynamic`` also quantizes Conv (ConvInteger).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def quantize_torch_dynamic(model: nn.Module, notes: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)``; lists the layers it quantized."""
    from resnetbench.backends.base import record_warnings

    with record_warnings(notes):
        q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    layers = [name for name, m in q.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    return q, {"quantized_layers": layers, "quantizer": "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8)"}


def quantize_onnx_dynamic(src: Path, dst: Path) -> dict[str, Any]:
    """ONNX Runtime dynamic quantization, int8 weights (pinned: QInt8, per-tensor)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from resnetbench.backends.base import Timer

    with Timer() as t:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False)
    return {"quantize_s": t.seconds, "quantizer": "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8)"}
