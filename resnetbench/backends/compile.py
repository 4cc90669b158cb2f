"""torch.compile (inductor) on CPU, compiled once per case and reused by its tests.

Inductor's ``freezing`` is on: it constant-folds weights and pre-packs them for oneDNN,
the configuration PyTorch documents for CPU inference. Compilation happens at load
(one warm-up call) and is recorded apart from inference time. The artifact is what it
needs to run: the state_dict (the compiled code is regenerated per process).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import Backend, BuildContext, Exported, Timer
from resnetbench.backends.eager import FP16_SLOW, EagerRunner, torch_input
from resnetbench.matrix import Case


class CompileBackend(Backend):
    name = "compile"
    dtypes = frozenset({"fp32", "fp16", "bf16"})
    slow = {"fp16": FP16_SLOW}
    artifact_kind = "state_dict (torch.compile regenerates its code per process)"

    def unsupported(self, case: Case) -> str | None:
        if case.dtype == "int8":
            return ("compile: int8 needs torchao's pt2e flow with the x86 inductor quantizer, "
                    "which is not part of torch 2.14 (torchao is not installed)")
        return super().unsupported(case)

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        with Timer() as t:
            torch.save(model.state_dict(), out / "model.pt")
        return Exported(["model.pt"], t.seconds)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> EagerRunner:
        import torch._inductor.config as inductor_config

        model.load_state_dict(torch.load(entry / "model.pt", map_location="cpu", weights_only=True))
        model.eval()
        inductor_config.freezing = True
        compiled = torch.compile(model, backend="inductor", dynamic=False)
        runner = EagerRunner(compiled, case, channels_last=False)
        x = torch_input(torch.randn(case.batch, 3, ctx.input_size, ctx.input_size), case)
        start = time.perf_counter()
        runner.run(x)
        meta.setdefault("runtime", {}).update(
            {"compile_s": time.perf_counter() - start, "inductor_freezing": True, "dynamic": False}
        )
        return runner
