"""PyTorch's own int8 paths, used by every backend that runs a PyTorch module.

Dynamic: ``quantize_dynamic`` only has dynamic kernels for Linear (and RNNs), so on a
ResNet it touches the final fc layer alone, which is why the guide's "1/4 of the size"
does not happen. Static: torchao's pt2e flow is not part of torch 2.14 and torchao is
not a dependency, so the ``torch.ao`` FX graph-mode path with the x86 backend is used,
and each case records that choice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import BuildContext, Timer, record_warnings
from resnetbench.formulas import QuantLayout

# How each path stores a model (measured against the artifacts it writes: tests/test_formulas.py).
LAYOUTS = {
    "int8-dynamic": QuantLayout(frozenset({"linear"}), False, 8, 8, 4, False,
                                "torch dynamic: only nn.Linear int8 (per-tensor), convs and BN stay fp32"),
    "int8-static": QuantLayout(frozenset({"conv", "linear"}), True, 8, 8, 4, True,
                               "torch.ao FX: conv+BN fused, int8 per-channel weights, float64 scales + int64 zero points, fp32 bias"),
}


def quantize_torch_dynamic(model: nn.Module, notes: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)``; lists the layers it quantized."""
    with record_warnings(notes):
        q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    layers = [name for name, m in q.named_modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    return q, {"quantized_layers": layers, "quantizer": "torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8)"}


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
