"""PyTorch eager in ``inference_mode``; the artifact is the saved state_dict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import TORCH_DTYPES, Backend, BuildContext, Exported, Timer
from resnetbench.matrix import Case

FP16_SLOW = (
    "fp16 convolutions in PyTorch on this CPU have no fast kernels "
    "(~2.7 s per ResNet-50 image measured, vs ~83 ms in fp32)"
)


def torch_input(x: torch.Tensor, case: Case, channels_last: bool = False) -> torch.Tensor:
    """Cast a host batch to the case's float dtype (int8 models take fp32 inputs)."""
    x = x.to(TORCH_DTYPES.get(case.dtype, torch.float32))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def faster_memory_format(model: nn.Module, x: torch.Tensor, tries: int = 3) -> tuple[bool, dict[str, float]]:
    """Time contiguous vs channels-last on this model and input; True when channels-last wins."""
    timings: dict[str, float] = {}
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        m = model.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)
        with torch.inference_mode():
            m(xi)
            best = float("inf")
            for _ in range(tries):
                start = time.perf_counter()
                m(xi)
                best = min(best, time.perf_counter() - start)
        timings[name] = best * 1e3
    return timings["channels_last"] < timings["contiguous"], timings


class EagerRunner:
    """Calls the module under ``inference_mode``."""

    def __init__(self, model: nn.Module, case: Case, channels_last: bool) -> None:
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


class EagerBackend(Backend):
    name = "eager"
    runs_torch_module = True
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    compressions = Backend.compressions | {"dynamic", "static"}
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
        channels_last = False
        if case.dtype in ("fp32", "bf16") and case.compression not in ("dynamic", "static"):
            sample = torch_input(torch.randn(case.batch, 3, ctx.input_size, ctx.input_size), case)
            channels_last, timings = faster_memory_format(model, sample)
            meta.setdefault("runtime", {})["memory_format_ms"] = timings
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        meta.setdefault("runtime", {})["channels_last"] = channels_last
        return EagerRunner(model, case, channels_last)
