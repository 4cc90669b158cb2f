"""Core ML (Apple devices): an ML Program package, converted by coremltools on any OS.

Conversion: the fp32 module is traced (``torch.jit.trace``; coremltools' ``torch.export``
path needs ``run_decompositions`` and warned 89 times per conversion here) and converted
with ``ct.convert(convert_to="mlprogram")`` for iOS 16 / macOS 13, at fp32 or fp16
compute precision (ML Programs default to fp16). BatchNorm is folded into the
convolutions' biases; input and output stay fp32 (two casts at fp16).

int8: ``coremltools.optimize.coreml.linear_quantize_weights`` (symmetric, per output
channel) on the fp16 program, Core ML's usual deployment. Only weights are int8
(``constexpr_affine_dequantize``: int8 data, an fp16 scale and an int8 zero point per
channel); activations stay fp16, which is what this suite's ``dynamic`` scheme means
here: int8 weights ahead, float activations at run time. Static activation quantization
(``linear_quantize_activations``) calibrates by running predictions, so it would need
macOS even to build; it is not offered.

Running: Core ML predicts only on macOS (coremltools' Linux wheels lack
``libcoremlpython``: ``predict`` raises "Model prediction is only supported on macOS").
Elsewhere the package is built and its size checked, and ``cannot_run_here`` skips the
accuracy and latency tests with that reason. The compute units (``CPU_ONLY`` by default,
comparable with the other CPU backends; ``compute_units: ALL`` in the case's settings for
the Neural Engine and GPU) are recorded with every run.
"""

from __future__ import annotations

import gc
import shutil
import sys
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.backends.base import Backend, BuildContext, Exported, Timer, quiet_output, record_warnings
from resnetbench.backends.size import Inventory, folded_formula
from resnetbench.compress.base import INT8_DYNAMIC
from resnetbench.formulas import QuantLayout, SizeFormula
from resnetbench.matrix import Case

PACKAGE = "model.mlpackage"
DEPLOYMENT_TARGET = "iOS16"
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")

# linear_quantize_weights on an fp16 program for iOS 16 (checked against the packages in
# tests/test_edge_backends.py): int8 weights, fp16 scale and int8 zero point per output
# channel, fp16 biases, BatchNorm folded.
INT8_WEIGHTS = QuantLayout(frozenset({"conv", "linear"}), True, 2, 1, 2, True,
                           "Core ML int8 weights (constexpr_affine_dequantize): per-channel fp16 scales and int8 zero "
                           "points, fp16 biases, BN folded; fp16 activations")


def coreml_runs_here() -> bool:
    """Core ML's runtime exists only in coremltools' macOS build (``libcoremlpython``)."""
    if sys.platform != "darwin":
        return False
    from coremltools.models import model as ct_model

    return ct_model._MLModelProxy is not None


class CoreMLRunner:
    """``MLModel.predict`` on a dict input prepared once (macOS only)."""

    def __init__(self, mlmodel: Any) -> None:
        self.mlmodel = mlmodel

    def prepare(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        return {"input": np.ascontiguousarray(x.float().numpy())}

    def run(self, native: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.mlmodel.predict(native)

    def to_logits(self, out: dict[str, np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(out["logits"], dtype=np.float32))


class CoreMLBackend(Backend):
    name = "coreml"
    settings_schema = {"compute_units": {"type": "string", "enum": list(COMPUTE_UNITS), "default": "CPU_ONLY",
                                         "description": "the compute units the converted model may use"}}
    dtypes = frozenset({"fp32", "fp16", "int8"})
    quantization = frozenset({INT8_DYNAMIC})
    requires = ("coremltools",)
    artifact_kind = "Core ML ML Program (.mlpackage: model.mlmodel + weights/weight.bin)"
    fixed_batch = True  # converted for one input shape

    def extra_name(self) -> str:
        return "edge"

    def int8_layout(self, scheme: str) -> QuantLayout:
        return INT8_WEIGHTS

    def size_formula(self, inv: Inventory, dtype: str, scheme: str | None,
                     float_layers: Collection[str] = (),
                     per_channel: bool | None = None) -> SizeFormula:  # no int8-budget path: both unused
        if scheme is not None:
            return super().size_formula(inv, dtype, scheme)
        return folded_formula(inv, dtype, dtype, f"Core ML ML Program: {dtype} weights and biases, BN folded")

    def cannot_run_here(self, case: Case) -> str | None:
        if coreml_runs_here():
            return None
        return (f"coreml: Core ML predicts only on macOS (this is {sys.platform}; coremltools converts and saves "
                "here, so the package's size is checked); run the Core ML shard on a macOS runner")

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        import coremltools as ct
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

        notes: list[str] = []
        extra: dict[str, Any] = {}
        sample = torch.randn(case.batch, 3, ctx.input_size, ctx.input_size)
        precision = ct.precision.FLOAT32 if case.dtype == "fp32" else ct.precision.FLOAT16
        with Timer() as t, record_warnings(notes), quiet_output():
            warnings.simplefilter("ignore", ResourceWarning)
            traced = torch.jit.trace(model.eval(), sample)
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name="input", shape=tuple(sample.shape), dtype=np.float32)],
                outputs=[ct.TensorType(name="logits", dtype=np.float32)],
                convert_to="mlprogram",
                compute_precision=precision,
                minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
            )
            temporary = [mlmodel]
            if case.dtype == "int8":
                with Timer() as q:
                    config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
                    mlmodel = linear_quantize_weights(mlmodel, OptimizationConfig(global_config=config))
                temporary.append(mlmodel)
                extra.update({"quantize_s": q.seconds,
                              "quantizer": "coremltools.optimize.coreml.linear_quantize_weights(linear_symmetric, "
                                           "int8, per_channel) on the fp16 program"})
                notes.append("int8 weights only (constexpr_affine_dequantize); activations fp16")
            mlmodel.save(str(out / PACKAGE))
            # Converted programs live in temporary packages that coremltools deletes only at exit
            # (one per conversion and quantization: 47 MB for an fp32 ResNet-18): delete them now.
            for m in temporary:
                if getattr(m, "is_temp_package", False):
                    shutil.rmtree(m.package_path, ignore_errors=True)
            del mlmodel, temporary
            gc.collect()  # the converter's temporary directories, while ResourceWarning is ignored
        extra.update({"compute_precision": "fp32" if case.dtype == "fp32" else "fp16",
                      "minimum_deployment_target": DEPLOYMENT_TARGET})
        files = sorted(str(p.relative_to(out)) for p in (out / PACKAGE).rglob("*") if p.is_file())
        return Exported(files, t.seconds, notes, extra)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> CoreMLRunner:
        import coremltools as ct

        units = str(self.setting(ctx, "compute_units"))
        if units not in COMPUTE_UNITS:
            raise ValueError(f"coreml: compute_units {units!r} is not one of {', '.join(COMPUTE_UNITS)}")
        runs = coreml_runs_here()
        mlmodel = ct.models.MLModel(str(entry / PACKAGE), compute_units=getattr(ct.ComputeUnit, units),
                                    skip_model_load=not runs)
        meta.setdefault("runtime", {}).update({
            "compute_units": units,
            "compute_precision": meta.get("compute_precision"),
            "minimum_deployment_target": meta.get("minimum_deployment_target"),
            "coremltools": ct.__version__,
            "model_loaded": runs,  # False: the package was read, Core ML itself is not available here
        })
        return CoreMLRunner(mlmodel)
