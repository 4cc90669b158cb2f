"""PyTorch eager in ``inference_mode``; the artifact is the saved state_dict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import TORCH_DTYPES, BuildContext, Exported, Recipe, Timer, is_quantized
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
    """Whether a case has the float recipes (channels-last first: the default and the reference's layout).

    oneDNN's convolutions prefer NHWC on this CPU. Measured at load on ResNet-18/34 at
    64x64 (three runs of ``resnetbench mutations``): channels-last was faster in 10 of 11
    loads (fp32 by 18-23%, bf16 by 5-11%). The layout used to be timed at every load (best
    of 3 calls per format): for bf16 the two were close enough that it flipped between
    processes, and a case loaded contiguous while its latency reference loaded
    channels-last ran 12% slower relative to it, which the gate read as a change. Now the
    layout is a recipe (``EAGER_RECIPES``) timed once per machine and kept in the cache
    (``tuning.py``), so every process runs the same one, and the reference always runs
    the default.
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


class MkldnnRunner(EagerRunner):
    """A module converted by ``torch.utils.mkldnn.to_mkldnn``: oneDNN tensors in, a dense output out.

    The output is made dense inside ``run``: that is part of what a caller pays for a usable result.
    """

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return torch_input(x, self.case).to_mkldnn()

    def run(self, native: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(native)
            return out.to_dense() if out.is_mkldnn else out


# Float models only: PyTorch's int8 modules and fp16 (no fast kernels) have one way to run.
EAGER_RECIPES = (
    Recipe("channels_last", {"layout": "channels_last"}, "module and input in channels-last memory format"),
    Recipe("contiguous", {"layout": "contiguous"}, "module and input in the default (NCHW) format"),
    Recipe("mkldnn", {"layout": "mkldnn"}, "torch.utils.mkldnn.to_mkldnn: weights and activations as oneDNN tensors"),
)
FP16_OR_INT8 = Recipe("contiguous", {"layout": "contiguous"}, "the default format (no other layout has kernels here)")


class EagerBackend(TorchModuleBackend):
    loads_into_module = True
    name = "eager"
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    slow = {"fp16": FP16_SLOW}
    artifact_kind = "state_dict (torch.save)"

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        with Timer() as t:
            torch.save(model.state_dict(), out / "model.pt")
        return Exported(["model.pt"], t.seconds)

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        return EAGER_RECIPES if uses_channels_last(case) else (FP16_OR_INT8,)

    def profile(self, runner: Any, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        from resnetbench.backends.profile import profile_torch_module

        if not isinstance(runner, EagerRunner) or not isinstance(runner.model, nn.Module):
            return None
        native = runner.prepare(x)
        return profile_torch_module(runner.model, lambda: runner.run(native), calls)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> EagerRunner:
        # The artifact is authoritative: its tensors replace the in-memory ones.
        state = torch.load(entry / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        layout = ctx.recipe.options.get("layout", "contiguous")
        meta.setdefault("runtime", {})["channels_last"] = layout == "channels_last"
        if layout == "mkldnn":
            from torch.utils import mkldnn as mkldnn_utils

            # to_mkldnn casts conv and linear weights to ``dtype`` but keeps batch norm's as they come,
            # and oneDNN's bf16 batch norm reads them as fp32: from a bf16 model it returns NaN.
            # Converting from fp32 is exact (bf16 -> fp32 -> bf16 round-trips).
            return MkldnnRunner(mkldnn_utils.to_mkldnn(model.float(), dtype=TORCH_DTYPES[case.dtype]), case, False)
        channels_last = layout == "channels_last"
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        return EagerRunner(model, case, channels_last)
