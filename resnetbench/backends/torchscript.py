"""TorchScript: trace, freeze, save; the artifact is the saved TorchScript file.

torch 2.14 still ships TorchScript but warns that ``torch.jit.trace``/``freeze`` are
deprecated; those warnings go into the case's notes rather than being hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import BuildContext, Exported, Recipe, Timer, record_warnings
from resnetbench.backends.eager import FP16_SLOW, EagerRunner, torch_input, uses_channels_last
from resnetbench.backends.profile import profile_torch_ops, torchscript_op_units
from resnetbench.backends.torch_module import TorchModuleBackend
from resnetbench.cache import verified_copy
from resnetbench.matrix import Case

RECIPES = (
    Recipe("frozen", {"optimize": False}, "the frozen, traced module as saved"),
    Recipe("optimize_for_inference", {"optimize": True},
           "torch.jit.optimize_for_inference after loading: oneDNN-prepacked convolutions, folded ops "
           "(done at load: the prepacked ops do not survive torch.jit.save)"),
)


class TorchScriptBackend(TorchModuleBackend):
    name = "torchscript"
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    slow = {"fp16": FP16_SLOW}
    artifact_kind = "frozen TorchScript module (torch.jit.save)"

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        notes: list[str] = []
        sample = torch_input(torch.randn(case.batch, 3, ctx.input_size, ctx.input_size), case)
        # The layout is baked into the frozen graph: the same fixed rule as eager's.
        channels_last = uses_channels_last(case)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        with Timer() as t, record_warnings(notes), torch.inference_mode():
            traced = torch.jit.trace(model.eval().to(memory_format=fmt), sample.contiguous(memory_format=fmt),
                                     check_trace=False)
            frozen = torch.jit.freeze(traced)
            torch.jit.save(frozen, str(out / "model.ts"))
        # The saved graph loses its module scopes: kept here, for the profiler to name operators by.
        op_units = torchscript_op_units(frozen.graph)
        return Exported(["model.ts"], t.seconds, notes, {"channels_last": channels_last, "op_units": op_units})

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        return RECIPES if case.dtype in ("fp32", "bf16") else RECIPES[:1]

    def profile(self, runner: Any, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        native = runner.prepare(x)
        return profile_torch_ops(lambda: runner.run(native), meta.get("op_units") or [], calls)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> EagerRunner:
        notes = meta.setdefault("notes", [])
        # A TorchScript archive carries code and pickled constants: loaded from a private copy
        # checked against the cache entry's verified manifest (cache.py).
        with record_warnings(notes), verified_copy(entry, "model.ts", meta) as path:
            module = torch.jit.load(str(path), map_location="cpu")
            if ctx.recipe.options.get("optimize"):
                module = torch.jit.optimize_for_inference(module)
        channels_last = bool(meta.get("channels_last"))
        meta.setdefault("runtime", {})["channels_last"] = channels_last
        return EagerRunner(module, case, channels_last=channels_last)
