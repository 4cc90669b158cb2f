"""torch.compile's inductor on CPU, compiled ahead of time once and reused across tests and runs.

The model is exported (``torch.export``) and compiled by AOTInductor with inductor's
``freezing`` on (weights constant-folded and pre-packed for oneDNN: PyTorch's documented
setting for CPU inference) into a ``.pt2`` package kept in the cache entry. JIT
``torch.compile`` would recompile in every process (freezing bypasses inductor's graph
cache: measured 26 of a 30 s second run); the package loads in ~0.05 s. Compile time is
recorded apart from inference time. The artifact, for size, is the state_dict: the
package holds the same weights plus machine-specific generated code (~1.8 MB for
ResNet-18), which is regenerated, not shipped. Because the package is native code, it is
loaded from a private copy hashed against the cache entry's signed manifest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.backends.base import BuildContext, Exported, Recipe, Timer
from resnetbench.backends.eager import FP16_SLOW, EagerRunner, torch_input
from resnetbench.backends.profile import exported_op_units, profile_torch_ops
from resnetbench.backends.torch_module import TorchModuleBackend
from resnetbench.cache import verified_copy
from resnetbench.matrix import Case

PACKAGE = "compiled.pt2"


def profiling_package(model: nn.Module, native: torch.Tensor, directory: Path) -> tuple[Any, list[list[str]]]:
    """The model compiled as the backend compiles it, plus inductor's per-kernel profiling
    (``cpp.enable_kernel_profile``), loaded; and its program's operators with their module paths."""
    with torch.inference_mode():
        program = torch.export.export(model.eval(), (native,))
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(directory / PACKAGE),
            inductor_configs={"freezing": True, "cpp.enable_kernel_profile": True})
        return torch._inductor.aoti_load_package(str(directory / PACKAGE)), exported_op_units(program)


class CompileBackend(TorchModuleBackend):
    name = "compile"
    dtypes = frozenset({"fp32", "fp16", "bf16"})
    quantization = frozenset()  # int8: see unsupported()
    slow = {"fp16": FP16_SLOW}
    artifact_kind = "state_dict (the AOTInductor package beside it is generated code + the same weights)"

    def unsupported(self, case: Case) -> str | None:
        if case.dtype == "int8":
            return ("compile: int8 needs torchao's pt2e flow with the x86 inductor quantizer, "
                    "which is not part of torch 2.14 and not wired into this backend")
        return super().unsupported(case)

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        torch.save(model.state_dict(), out / "model.pt")
        sample = torch_input(torch.randn(case.batch, 3, ctx.input_size, ctx.input_size), case)
        with Timer() as t, torch.inference_mode():
            program = torch.export.export(model.eval(), (sample,))
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(out / PACKAGE), inductor_configs={"freezing": True}
            )
        return Exported(["model.pt"], t.seconds, [], {"compile_s": t.seconds, "package_bytes": (out / PACKAGE).stat().st_size})

    def profile(self, runner: Any, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        # The timed package runs uninstrumented code that torch.profiler cannot see into: a package
        # of its own, compiled with per-kernel profiling, is profiled instead (backends/profile.py).
        native = runner.prepare(x)
        with Timer() as t, tempfile.TemporaryDirectory(prefix="resnetbench-profile-") as tmp:
            profiled, op_units = profiling_package(model, native, Path(tmp))
        profile = profile_torch_ops(lambda: EagerRunner(profiled, runner.case, False).run(native), op_units, calls)
        profile["profiler"] += " (a package compiled with cpp.enable_kernel_profile)"
        profile["compile_s"] = round(t.seconds, 3)
        profile["cost_s"] = round(profile["cost_s"] + t.seconds, 3)
        return profile

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> EagerRunner:
        # The package holds a shared library that loading runs: loaded from a private copy checked
        # against the entry's verified manifest (cache.py), never from the shared cache directory.
        with Timer() as t, verified_copy(entry, PACKAGE, meta) as package:
            compiled = torch._inductor.aoti_load_package(str(package))
        meta.setdefault("runtime", {}).update(
            {"compile_s": meta.get("compile_s"), "package_load_s": t.seconds, "inductor_freezing": True,
             "aot": "torch._inductor.aoti_compile_and_package", "dynamic": False}
        )
        return EagerRunner(compiled, case, channels_last=False)
