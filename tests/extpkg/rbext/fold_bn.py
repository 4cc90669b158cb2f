"""BatchNorm folded into the preceding convolutions (``torch.fx`` fusion): fewer
parameters, the same function up to float rounding."""

from __future__ import annotations

from typing import Any

from torch import nn

from resnetbench.compress.base import FLOATS, Method, MethodContext
from resnetbench.matrix import Case


def fold(model: nn.Module, case: Case, ctx: MethodContext) -> tuple[nn.Module, dict[str, Any]]:
    from torch.fx.experimental.optimization import fuse

    before = sum(p.numel() for p in model.parameters())
    folded = fuse(model.eval())
    after = sum(p.numel() for p in folded.parameters())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    return folded, {"params_before": before, "params_after": after, "batchnorms_left": left}


METHOD = Method("fold-bn", FLOATS, prepare=fold, removes_parameters=True)
