"""OpenVINO on CPU: converted from the ONNX artifact, saved as IR (model.xml + model.bin).

Compiled with the LATENCY performance hint for batch 1 and THROUGHPUT for larger
batches, the thread count set explicitly, and the inference precision pinned (the CPU
plugin may otherwise pick bf16 on its own where the CPU has it): f32 for fp32, bf16
for bf16. fp16 weights are stored compressed and computed in f32 (no fp16 arithmetic
on this CPU). int8 comes from loading the ONNX Runtime QDQ model, which OpenVINO's
low-precision transformations run as int8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.backends import onnx_quantize
from resnetbench.backends.base import Backend, BuildContext, Exported, Recipe, Timer
from resnetbench.backends.onnxruntime import export_for_onnx
from resnetbench.backends.profile import onnx_node_scopes, profile_openvino
from resnetbench.compress.base import INT8_BUDGET, INT8_STATIC
from resnetbench.formulas import QuantLayout
from resnetbench.matrix import Case

PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f32", "int8": "f32"}


class OpenVINORunner:
    """An infer request with the input prepared as numpy once."""

    def __init__(self, compiled: Any, model_path: Path, config: dict[str, Any]) -> None:
        self.request = compiled.create_infer_request()
        self.model_path = model_path  # with the config, what a profiling compile of the same model needs
        self.config = config

    def prepare(self, x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(x.float().numpy())

    def run(self, native: np.ndarray) -> Any:
        return self.request.infer({0: native}, share_inputs=True)

    def to_logits(self, out: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(out[0], dtype=np.float32))


RECIPES = (
    Recipe("hint", {}, "the performance hint alone (LATENCY at batch 1, THROUGHPUT above) picks streams and threads"),
    Recipe("one-stream-pinned", {"NUM_STREAMS": 1, "ENABLE_CPU_PINNING": True},
           "the hint, plus one stream and threads pinned to cores"),
)


class OpenVINOBackend(Backend):
    name = "openvino"
    settings_schema = {"performance_hint": {
        "type": "string", "enum": ["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"],
        "description": "the compile-time performance hint (default: LATENCY at batch 1, THROUGHPUT above)"}}
    dtypes = frozenset({"fp32", "fp16", "bf16", "int8"})
    # Weights-and-activations int8 comes from the static QDQ model (also the budgeted one); no dynamic path.
    quantization = frozenset({INT8_STATIC, INT8_BUDGET})
    requires = ("openvino", "onnx")
    artifact_kind = "OpenVINO IR (model.xml + model.bin)"

    def int8_layout(self, scheme: str) -> QuantLayout:
        return onnx_quantize.LAYOUTS[scheme]  # the IR keeps the QDQ model's int8 weights

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        import openvino as ov

        onnx_dir = out / "onnx"
        onnx_dir.mkdir()
        onnx_case = case if case.dtype == "int8" else Case(case.arch, "fp32", case.compression, case.backend, case.batch)
        onnx_export = export_for_onnx(model, onnx_case, onnx_dir, ctx)
        with Timer() as t:
            ov_model = ov.convert_model(str(onnx_dir / "model.onnx"))
            ov.save_model(ov_model, str(out / "model.xml"), compress_to_fp16=case.dtype in ("fp16", "bf16"))
        # The IR keeps the ONNX node names but not their module scopes: kept here, for the profiler.
        node_scopes = onnx_node_scopes(onnx_dir / "model.onnx")
        for f in onnx_dir.iterdir():
            f.unlink()
        onnx_dir.rmdir()
        notes = list(onnx_export.notes)
        if case.dtype == "fp16":
            notes.append("fp16 weights (compress_to_fp16), f32 compute: no fp16 arithmetic on this CPU")
        if case.dtype == "bf16":
            notes.append("fp16-compressed weights, bf16 compute (INFERENCE_PRECISION_HINT=bf16)")
        extra = {**{k: v for k, v in onnx_export.extra.items() if k != "ops"}, "node_scopes": node_scopes}
        return Exported(["model.bin", "model.xml"], onnx_export.seconds + t.seconds, notes, extra)

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        return RECIPES

    def compute_dtype(self, case: Case) -> str:
        return "fp32" if case.dtype == "fp16" else case.dtype  # fp16 weights, f32 compute

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> OpenVINORunner:
        return self.load_streams(model, case, entry, meta, ctx, 1)[0]

    def load_streams(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext,
                     streams: int) -> list[Any]:
        """One compiled model with ``streams`` CPU streams (``ctx.threads`` threads each) and two
        infer requests per stream, as benchmark_app runs ``-nstreams``: OpenVINO's
        ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` says one per stream, but the requests here are driven
        from Python threads, and a second one queued keeps the stream busy while Python answers
        the first. One stream is the case's own load (its hint and recipe). The runners are the
        requests, one per serving thread."""
        import openvino as ov

        core = ov.Core()
        hint = self.setting(ctx, "performance_hint") or ("LATENCY" if case.batch == 1 else "THROUGHPUT")
        config = {
            "PERFORMANCE_HINT": hint,
            "INFERENCE_NUM_THREADS": ctx.threads,
            "INFERENCE_PRECISION_HINT": PRECISION[case.dtype],
            **ctx.recipe.options,
        }
        if streams > 1:
            config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams,
                           "INFERENCE_NUM_THREADS": streams * ctx.threads})
        ov_model = core.read_model(str(entry / "model.xml"))
        ov_model.reshape([case.batch, 3, ctx.input_size, ctx.input_size])
        compiled = core.compile_model(ov_model, "CPU", config)
        meta.setdefault("runtime", {}).update({**config, "openvino": ov.__version__})
        requests = 2 * streams if streams > 1 else 1
        meta["runtime"]["infer_requests"] = requests
        return [OpenVINORunner(compiled, entry / "model.xml", config) for _ in range(requests)]

    def profile(self, runner: Any, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        import openvino as ov

        if not isinstance(runner, OpenVINORunner):
            return None
        # A compiled model of its own: the performance counters cost time, never in the timed runner.
        core = ov.Core()
        ov_model = core.read_model(str(runner.model_path))
        ov_model.reshape(list(x.shape))
        compiled = core.compile_model(ov_model, "CPU", {**runner.config, "PERF_COUNT": True})
        return profile_openvino(compiled, runner.prepare(x), meta.get("node_scopes") or {}, calls)
