"""ONNX Runtime on its CPU execution provider, configured as its documentation advises.

Graph optimisation level ALL, intra-op threads set explicitly (inter-op 1, sequential
execution: a ResNet is one chain), inputs prepared as numpy once. fp16 runs as an fp16
graph; bf16 is stored as bf16 weights with fp32 compute (no bf16 Conv kernel on CPU);
int8 comes from ``onnxruntime.quantization`` (dynamic, or static QDQ with calibration).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.backends import onnx_budget, onnx_quantize
from resnetbench.backends.base import Backend, BuildContext, Exported, Recipe, Timer, cast_model
from resnetbench.backends.onnx_export import bf16_weight_storage, export_onnx, onnx_files, op_histogram, single_file
from resnetbench.compress import get_method
from resnetbench.compress.base import INT8_BUDGET, INT8_DYNAMIC, INT8_STATIC
from resnetbench.formulas import QuantLayout
from resnetbench.matrix import Case


def export_for_onnx(model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
    """The ONNX artifact for a case: model.onnx (+ .data), at the case's dtype or int8."""
    notes: list[str] = []
    extra: dict[str, Any] = {}
    sample = torch.randn(case.batch, 3, ctx.input_size, ctx.input_size)
    with Timer() as t:
        if case.dtype == "fp16":
            export_onnx(cast_model(model, "fp16"), sample.half(), out / "model.onnx")
        elif case.dtype in ("fp32", "bf16", "int8"):
            work = out / "fp32"
            work.mkdir()
            export_onnx(model, sample, work / "model.onnx")
            if case.dtype == "fp32":
                for f in work.iterdir():
                    f.rename(out / f.name)
            elif case.dtype == "bf16":
                n = bf16_weight_storage(work / "model.onnx", out / "model.onnx")
                notes.append(f"bf16 weight storage ({n} tensors), fp32 compute: ONNX Runtime's CPU EP has no bf16 Conv")
            elif get_method(case.compression).quantization == INT8_DYNAMIC:
                src = single_file(work / "model.onnx", work / "single.onnx")
                extra.update(onnx_quantize.quantize_onnx_dynamic(src, out / "model.onnx"))
            elif get_method(case.compression).quantization == INT8_STATIC:
                src = single_file(work / "model.onnx", work / "single.onnx")
                extra.update(onnx_quantize.quantize_onnx_static(src, out / "model.onnx", ctx, out / "pre"))
            elif get_method(case.compression).quantization == INT8_BUDGET:
                src = single_file(work / "model.onnx", work / "single.onnx")
                extra.update(onnx_budget.quantize_onnx_budgeted(src, out / "model.onnx", ctx, out / "pre"))
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(out / "pre", ignore_errors=True)
    extra["ops"] = op_histogram(out / "model.onnx")
    return Exported(onnx_files(out, "model.onnx"), t.seconds, notes, extra)


class OrtRunner:
    """An InferenceSession with a numpy input prepared once."""

    def __init__(self, session: Any, input_dtype: type) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.input_dtype = input_dtype

    def prepare(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(x.float().numpy().astype(self.input_dtype))}

    def run(self, native: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, native)

    def to_logits(self, out: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(out[0], dtype=np.float32))


class OrtBoundRunner(OrtRunner):
    """The same session run through an IOBinding: input and output buffers bound once per input.

    ``run`` then skips building the feed and allocating the output on every call. The
    output buffer is reused, so ``run`` hands back a view that ``to_logits`` copies.
    """

    def prepare(self, x: torch.Tensor) -> Any:
        arr: np.ndarray = np.ascontiguousarray(x.float().numpy().astype(self.input_dtype))
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, arr)
        output = self.session.get_outputs()[0]
        out = np.empty((arr.shape[0], *output.shape[1:]), dtype=self.input_dtype)
        binding.bind_output(output.name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)
        return _Bound(binding, arr, out)

    def run(self, native: Any) -> list[np.ndarray]:
        self.session.run_with_iobinding(native.binding)
        return [native.out]

    def to_logits(self, out: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.array(out[0], dtype=np.float32))


@dataclass
class _Bound:
    """A binding and the arrays it points into (ONNX Runtime holds raw pointers: they must live as long)."""

    binding: Any
    arr: np.ndarray
    out: np.ndarray


RECIPES = (
    Recipe("run", {"level": "all", "api": "run"}, "graph optimisation ALL, InferenceSession.run with a numpy feed"),
    Recipe("iobinding", {"level": "all", "api": "iobinding"},
           "graph optimisation ALL, input and output buffers bound once (run_with_iobinding)"),
    Recipe("extended", {"level": "extended", "api": "run"},
           "graph optimisation EXTENDED (no NCHWc layout transformation), run()"),
)


def session_options(threads: int, optimized_path: Path | None = None, level: str = "all") -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    # Worker threads still spin during a run, but stop when it ends: a case's session and
    # its latency reference's session (measure/latency_reference.py) run alternately, and two
    # pools spinning between runs on two cores slowed each other 1.4-2x when measured
    # here. Alone, a session's median latency is the same with or without it (2.34 vs 2.33 ms).
    so.add_session_config_entry("session.force_spinning_stop", "1")
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    return so


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    settings_schema = {"save_optimized": {"type": "boolean", "default": False,
                                          "description": "also store ONNX Runtime's optimised graph beside the model"}}
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    quantization = frozenset({INT8_DYNAMIC, INT8_STATIC, INT8_BUDGET})
    requires = ("onnxruntime", "onnx")
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    artifact_kind = "ONNX model + external data"

    def int8_layout(self, scheme: str) -> QuantLayout:
        return onnx_quantize.LAYOUTS[scheme]

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        return export_for_onnx(model, case, out, ctx)

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        return RECIPES

    def compute_dtype(self, case: Case) -> str:
        return "fp32" if case.dtype == "bf16" else case.dtype  # bf16 storage, fp32 compute

    def profile(self, runner: Any, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        from resnetbench.backends.profile import profile_onnxruntime

        if not isinstance(runner, OrtRunner):
            return None
        feed: dict[str, np.ndarray] = {runner.input_name: np.ascontiguousarray(x.float().numpy().astype(runner.input_dtype))}
        options = session_options(threads, level=recipe.options.get("level", "all"))
        return profile_onnxruntime(entry / "model.onnx", options, feed, list(self.providers), calls)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> OrtRunner:
        import onnxruntime as ort

        optimized = None
        if self.setting(ctx, "save_optimized"):
            optimized = entry.parent / (entry.name + "-optimized.onnx")
        level = ctx.recipe.options.get("level", "all")
        session = ort.InferenceSession(
            str(entry / "model.onnx"), session_options(ctx.threads, optimized, level), providers=list(self.providers)
        )
        meta.setdefault("runtime", {}).update(
            {"providers": session.get_providers(), "graph_optimization": f"ORT_ENABLE_{level.upper()}",
             "intra_op_threads": ctx.threads, "spinning": "during runs only (session.force_spinning_stop=1)"}
        )
        runner = OrtBoundRunner if ctx.recipe.options.get("api") == "iobinding" else OrtRunner
        return runner(session, np.float16 if case.dtype == "fp16" else np.float32)
