"""What every backend that runs a PyTorch module shares: casting and PyTorch's int8 paths."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnetbench.backends import torch_quantize
from resnetbench.backends.base import Backend, BuildContext, cast_model
from resnetbench.compress import get_method
from resnetbench.compress.base import INT8_DYNAMIC, INT8_STATIC, Method
from resnetbench.formulas import QuantLayout
from resnetbench.matrix import Case


class TorchModuleBackend(Backend):
    """A backend that runs a PyTorch module: the model is cast to the case's dtype, or
    quantized with PyTorch's own int8 paths (``torch_quantize.py``), before ``export``."""

    runs_torch_module = True
    quantization = frozenset({INT8_DYNAMIC, INT8_STATIC})

    def prepare_model(self, model: nn.Module, case: Case, method: Method, ctx: BuildContext, notes: list[str],
                      artifact_cached: bool) -> tuple[nn.Module, dict[str, Any]]:
        if method.quantization == INT8_DYNAMIC:
            return torch_quantize.quantize_torch_dynamic(model, notes)
        if method.quantization == INT8_STATIC:
            if artifact_cached:
                # The artifact holds the calibrated scales: one batch builds the module's structure.
                assert ctx.calibration is not None
                ctx.calibration = ctx.calibration[:1]
            return torch_quantize.quantize_torch_static(model, ctx, notes)
        return cast_model(model, case.dtype), {}

    def compute_dtype(self, case: Case) -> str:
        # PyTorch's dynamic quantization makes only Linear layers int8: the convolutions stay fp32.
        return "fp32" if get_method(case.compression).quantization == INT8_DYNAMIC else case.dtype

    def int8_layout(self, scheme: str) -> QuantLayout:
        return torch_quantize.LAYOUTS[scheme]
