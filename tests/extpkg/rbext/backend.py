"""Eager PyTorch under ``torch.no_grad`` instead of ``inference_mode``, in contiguous layout.

It subclasses the built-in eager backend: it inherits casting to the case's dtype and
PyTorch's int8 paths from the backend type, whatever its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import BuildContext
from resnetbench.backends.eager import EagerBackend, EagerRunner
from resnetbench.matrix import Case


class NoGradRunner(EagerRunner):
    def run(self, native: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(native)


class NoGradEagerBackend(EagerBackend):
    name = "eager-nograd"

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> NoGradRunner:
        model.load_state_dict(torch.load(entry / "model.pt", map_location="cpu", weights_only=True))
        meta.setdefault("runtime", {})["grad_mode"] = "no_grad"
        return NoGradRunner(model.eval(), case, channels_last=False)
