"""PyTorch eager in ``inference_mode``; the artifact is the saved state_dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import TORCH_DTYPES, BuildContext, Exported, Timer, is_quantized
from resnetbench.backends.torch_module import TorchModuleBackend
from resnetbench.matrix import Case

FP16_SLOW = (
    "fp16 convolutions in PyTorch on this CPU have no fast kernels "
    "(~2.7 s per ResNet-50 image measured, vs ~83 ms in fp32)"
)


def torch_input(x: torch.Tensor, case: Case, channels_last: bool = False) -> torch.Tensor:
    """Cast a host batch to the case's float dtype (int8 models take fp32 inputs)."""
    x = x.to(TORCH_DTYPES.get(case.dtype, torch.float32))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def uses_channels_last(case: Case) -> bool:
    """Float (fp32/bf16) uncompressed-quantization models run channels-last: a fixed rule, not a timing.

    oneDNN's convolutions prefer NHWC on this CPU. Measured at load on ResNet-18/34 at
    64x64 (three runs of ``resnetbench mutations``): channels-last was faster in 10 of 11
    loads (fp32 by 18-23%, bf16 by 5-11%; the eleventh, a bf16 ResNet-18, by a best-of-3
    timing that put contiguous 8% ahead). The choice used to be timed at every load (best of 3 calls per format):
    for bf16 the two were close enough that it flipped between processes, and a case
    loaded contiguous while its latency reference loaded channels-last ran 12% slower
    relative to it, which the gate read as a change (false alarms on unchanged bf16 eager
    cases). A fixed rule makes the same case run the same way in every process.
    """
    return case.dtype in ("fp32", "bf16") and not is_quantized(case)


class EagerRunner:
    """Calls the module (or any callable model, e.g. an AOTInductor package) under ``inference_mode``."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], case: Case, channels_last: bool) -> None:
        self.model = model
        self.case = case
        self.channels_last = channels_last

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return torch_input(x, self.case, self.channels_last)

    def run(self, native: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(native)

    def to_logits(self, out: torch.Tensor) -> torch.Tensor:
        return out.float()


class EagerBackend(TorchModuleBackend):
    name = "eager"
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    slow = {"fp16": FP16_SLOW}
    artifact_kind = "state_dict (torch.save)"

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        with Timer() as t:
            torch.save(model.state_dict(), out / "model.pt")
        return Exported(["model.pt"], t.seconds)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> EagerRunner:
        # The artifact is authoritative: its tensors replace the in-memory ones.
        state = torch.load(entry / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        channels_last = uses_channels_last(case)
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        meta.setdefault("runtime", {})["channels_last"] = channels_last
        return EagerRunner(model, case, channels_last)
