"""LiteRT (the TFLite runtime) on CPU, through its XNNPACK delegate: the guide's Android target.

Conversion: ``litert_torch.convert`` (torch.export -> MLIR -> flatbuffer) turns the fp32
module into ``model.tflite``; BatchNorm is folded into the convolutions' biases and the
input stays NCHW, as in PyTorch. It runs in a child process: litert-torch imports JAX,
which from then on warns at every ``os.fork()`` in the process that it "will likely lead
to a deadlock" (measured: OpenVINO and ONNX Runtime cases after a LiteRT conversion in
the same run errored on that warning). The interpreter and the quantizer need no JAX. Reduced precisions come from the LiteRT toolchain's own
quantizer, ``ai-edge-quantizer``, applied to that flatbuffer:

- fp16: ``FLOAT_CASTING`` of conv and fc weights to fp16 (biases stay fp32); XNNPACK
  unpacks them to fp32 when it loads the model, so compute is fp32.
- int8 static: ``static_wi8_ai8``, int8 weights per channel and int8 activations
  calibrated (min/max) on the case's calibration images. The model's input and output
  are int8 too: the runner quantizes the input with the model's own scale and zero point
  in ``prepare`` (untimed, as an app would feed quantized pixels) and dequantizes logits.
- int8 dynamic: ``dynamic_wi8_afp32``, int8 weights per channel, activations quantized
  at run time, float input and output.

Inference: ``ai_edge_litert.interpreter.Interpreter`` with the case's thread count and
its default op resolver, which hands the graph to XNNPACK; how many nodes XNNPACK took is
recorded with the run. The flatbuffer has a fixed input shape, so each batch size is its
own artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resnetbench.architectures import ARCHITECTURES
from resnetbench.backends.base import Backend, BuildContext, Exported, Timer, quiet_output, record_warnings
from resnetbench.backends.size import Inventory, folded_formula
from resnetbench.compress import get_method, structure
from resnetbench.compress.base import INT8_DYNAMIC, INT8_STATIC
from resnetbench.formulas import QuantLayout, SizeFormula
from resnetbench.matrix import Case

MODEL = "model.tflite"

# How ai-edge-quantizer stores each int8 path in the flatbuffer (checked against the
# artifacts in tests/test_edge_backends.py). Every quantized tensor carries its
# quantization parameters as a float32 scale and an int64 zero point per channel; in the
# static path the int32 biases are quantized per channel as well, so per output channel
# there are two scales and two zero points.
LAYOUTS = {
    INT8_STATIC: QuantLayout(frozenset({"conv", "linear"}), True, 2 * 4, 2 * 8, 4, True,
                             "LiteRT static int8: per-channel int8 weights and int32 biases, each with fp32 scales "
                             "and int64 zero points, BN folded"),
    INT8_DYNAMIC: QuantLayout(frozenset({"conv", "linear"}), True, 4, 8, 4, True,
                              "LiteRT dynamic int8: per-channel int8 weights with fp32 scales and int64 zero points, "
                              "fp32 biases, BN folded"),
}


class LiteRTRunner:
    """A LiteRT interpreter; int8 input/output (static int8) quantized and dequantized outside ``run``."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        self.input_index, self.input_dtype, self.input_q = inp["index"], inp["dtype"], inp["quantization"]
        self.output_index, self.output_dtype, self.output_q = out["index"], out["dtype"], out["quantization"]

    def prepare(self, x: torch.Tensor) -> np.ndarray:
        a = x.float().numpy()
        if self.input_dtype == np.int8:
            scale, zero_point = self.input_q
            a = np.clip(np.round(a / scale) + zero_point, -128, 127)
        return np.ascontiguousarray(a.astype(self.input_dtype))

    def run(self, native: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input_index, native)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)  # a copy: the next invoke overwrites the buffer

    def to_logits(self, out: np.ndarray) -> torch.Tensor:
        a = out.astype(np.float32)
        if self.output_dtype == np.int8:
            scale, zero_point = self.output_q
            a = (a - zero_point) * scale
        return torch.from_numpy(a)


CONVERT_TIMEOUT_S = 1800


def _convert(model: nn.Module, arch: str, sample_shape: tuple[int, ...], dst: Path, notes: list[str]) -> None:
    """``litert_torch.convert`` of ``model`` in a child process (see the module docstring).

    The child gets the model as data, never as a pickle: its tensors (safetensors) and the
    description of its layers on the registered architecture (``compress/structure.py``),
    plus the architecture factory's import path for one registered only in this process.
    """
    src = dst.with_name(dst.name + ".src")
    src.mkdir()
    structure.save(model, arch, src)
    factory = ARCHITECTURES.get(arch)
    where = (getattr(factory, "__module__", None), getattr(factory, "__qualname__", None))
    spec = {"factory": f"{where[0]}:{where[1]}" if all(where) else None, "shape": list(sample_shape)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "resnetbench.backends.litert", str(src), str(dst), json.dumps(spec)],
            capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S,
        )
    finally:
        shutil.rmtree(src, ignore_errors=True)
    report = dst.with_name(dst.name + ".json")
    if proc.returncode != 0 or not report.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"litert: litert_torch.convert failed (exit {proc.returncode}): {' | '.join(tail)}")
    notes.extend(n for n in json.loads(report.read_text())["notes"] if n not in notes)
    report.unlink()


def _convert_main(src: str, dst: str, spec_json: str) -> None:
    """The child: rebuild the module from its tensors, convert it, save the flatbuffer and the warnings it raised."""
    import litert_torch

    from resnetbench.registry import RegistryError

    notes: list[str] = []
    spec = json.loads(spec_json)
    arch = json.loads((Path(src) / structure.STRUCTURE_FILE).read_text(encoding="utf-8"))["arch"]
    try:
        ARCHITECTURES.get(arch)
    except RegistryError:  # registered in the parent only (a matrix import path, @register_arch)
        if not spec["factory"]:
            raise
        ARCHITECTURES.add_target(arch, spec["factory"])
    model = structure.load(Path(src))
    sample = torch.randn(*spec["shape"])
    with record_warnings(notes), quiet_output():
        litert_torch.convert(model.eval(), (sample,)).export(dst)
    Path(dst + ".json").write_text(json.dumps({"notes": notes}))


def _calibration_data(interpreter: Any, images: torch.Tensor, batch: int) -> dict[str, list[dict[str, np.ndarray]]]:
    """The calibration images in the model's fixed batch, keyed as ai-edge-quantizer wants them."""
    signature, io_names = next(iter(interpreter.get_signature_list().items()))
    name = io_names["inputs"][0]
    if len(images) < batch:
        images = images.repeat((batch + len(images) - 1) // len(images), 1, 1, 1)
    chunks = [images[i : i + batch].numpy() for i in range(0, len(images) - batch + 1, batch)]
    return {signature: [{name: np.ascontiguousarray(c)} for c in chunks]}


def _quantize(float_model: Path, dst: Path, case: Case, ctx: BuildContext) -> dict[str, Any]:
    """Apply ai-edge-quantizer to the fp32 flatbuffer: fp16 weights, or int8 static/dynamic."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.qtyping import TFLOperationName

    qt = quantizer.Quantizer(str(float_model))
    info: dict[str, Any] = {}
    scheme = get_method(case.compression).quantization if case.dtype == "int8" else None
    if case.dtype == "fp16":
        for op in (TFLOperationName.CONV_2D, TFLOperationName.FULLY_CONNECTED):
            qt.add_weight_only_config(regex=".*", operation_name=op, num_bits=16,
                                      algorithm_key=recipe.AlgorithmName.FLOAT_CASTING)
        info["quantizer"] = "ai_edge_quantizer FLOAT_CASTING (fp16 weights of CONV_2D and FULLY_CONNECTED)"
    elif scheme == INT8_STATIC:
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        info["quantizer"] = "ai_edge_quantizer recipe.static_wi8_ai8 (int8 per-channel weights, int8 activations, min/max)"
    elif scheme == INT8_DYNAMIC:
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        info["quantizer"] = "ai_edge_quantizer recipe.dynamic_wi8_afp32 (int8 per-channel weights, run-time activations)"
    else:
        raise ValueError(f"litert: nothing to quantize for {case.id}")
    with Timer() as t:
        calibration: dict[str, Any] = {}
        if qt.need_calibration:
            assert ctx.calibration is not None, "static quantization needs calibration data"
            probe = Interpreter(model_path=str(float_model))
            with warnings.catch_warnings():
                # The calibrator keeps every intermediate tensor on purpose; its interpreter warns that this is for debugging.
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
                calibration = qt.calibrate(_calibration_data(probe, ctx.calibration, case.batch), num_threads=ctx.threads)
            info["calibration_samples"] = int(len(ctx.calibration))
        qt.quantize(calibration or None, enable_progress_report=False).export_model(str(dst), overwrite=True)
    info["quantize_s"] = t.seconds
    return info


class LiteRTBackend(Backend):
    name = "litert"
    dtypes = frozenset({"fp32", "fp16", "int8"})
    quantization = frozenset({INT8_STATIC, INT8_DYNAMIC})
    requires = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")
    artifact_kind = "TFLite flatbuffer (model.tflite)"
    fixed_batch = True  # the flatbuffer's input shape is fixed at conversion

    def extra_name(self) -> str:
        return "edge"

    def int8_layout(self, scheme: str) -> QuantLayout:
        return LAYOUTS[scheme]

    def size_formula(self, inv: Inventory, dtype: str, scheme: str | None,
                     float_layers: Collection[str] = (),
                     per_channel: bool | None = None) -> SizeFormula:  # no int8-budget path: both unused
        if scheme is not None:
            return super().size_formula(inv, dtype, scheme)
        return folded_formula(inv, dtype, "fp32", f"TFLite flatbuffer: {dtype} conv/fc weights, fp32 biases, BN folded")

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        notes: list[str] = []
        extra: dict[str, Any] = {}
        float_path = out / (MODEL if case.dtype == "fp32" else "fp32.tflite")
        with Timer() as t:
            _convert(model, case.arch, (case.batch, 3, ctx.input_size, ctx.input_size), float_path, notes)
        extra["convert_s"] = t.seconds
        if case.dtype != "fp32":
            with record_warnings(notes), quiet_output():
                extra.update(_quantize(float_path, out / MODEL, case, ctx))
            os.unlink(float_path)
        if case.dtype == "fp16":
            notes.append("fp16 weights, fp32 compute: XNNPACK unpacks fp16 weights to fp32 at load")
        return Exported([MODEL], t.seconds + extra.get("quantize_s", 0.0), notes, extra)

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> LiteRTRunner:
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter

        with quiet_output():
            interpreter = Interpreter(model_path=str(entry / MODEL), num_threads=ctx.threads)
            runner = LiteRTRunner(interpreter)
        # After delegation the node list holds a DELEGATE node per XNNPACK partition (0: XNNPACK took nothing).
        delegate_nodes = sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
        meta.setdefault("runtime", {}).update({
            "interpreter": f"ai_edge_litert.interpreter.Interpreter {version('ai-edge-litert')}",
            "op_resolver": "AUTO (applies the XNNPACK delegate)",
            "num_threads": ctx.threads,
            "xnnpack_partitions": delegate_nodes,
            "input_dtype": np.dtype(runner.input_dtype).name,
        })
        return runner


if __name__ == "__main__":
    _convert_main(*sys.argv[1:4])
