"""Static int8 within an accuracy budget on the ONNX Runtime QDQ model (``int8-budget``).

NNCF's ``quantize_with_accuracy_control`` algorithm, on the same quantizer the ``static``
method uses (``onnx_quantize.quantize_onnx_static``), so the only difference between the
full-int8 artifact and this one is the layers left in float:

1. Quantize every Conv/Gemm (calibrated once; the ranges are reused for every variant).
   Top-1 on the labelled validation images (``BuildContext.validation``): if the drop from
   the float model is within ``max_drop`` points, that is the artifact.
2. Rank the layers by sensitivity: each layer quantized *alone*, the mean over validation
   images of its logits' squared error relative to the float logits' spread (NNCF ranks by
   per-item error too).
3. Revert the most sensitive layer to float, re-quantize, re-validate; repeat until the drop
   fits. Every step is recorded; the reverted layers are named by their PyTorch module
   (``layer3.1.conv2``) so the size formula can count them as float.

When even every layer in float misses the budget (the budget is below what the float model
loses to noise, impossible for a drop from itself), the search stops with all reverted and
says so.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from resnetbench.backends.base import BuildContext, Timer
from resnetbench.backends.onnx_quantize import static_quantize_options

QUANTIZED_OPS = ("Conv", "Gemm")


def quantizable_layers(model_path: Path) -> list[tuple[str, str]]:
    """(ONNX node name, PyTorch module name) of every Conv/Gemm whose weight is an initializer."""
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [(node.name, node.input[1].removesuffix(".weight")) for node in model.graph.node
            if node.op_type in QUANTIZED_OPS and len(node.input) > 1 and node.input[1] in initializers]


def _logits(path: Path, images: torch.Tensor, threads: int, batch: int = 50) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    if isinstance(fixed, int):  # an export with a fixed batch: feed it that many at a time
        batch = fixed
    out = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].numpy()
        short = batch - len(x) if isinstance(fixed, int) else 0
        if short:
            x = np.concatenate([x, np.repeat(x[-1:], short, axis=0)])
        out.append(session.run(None, {name: x})[0][: len(x) - short])
    return np.concatenate(out).astype(np.float64)


def _top1(logits: np.ndarray, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels.numpy()).mean() * 100.0)


def _relative_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """Mean per-item squared error over the float logits' per-item spread."""
    centred = reference - reference.mean(1, keepdims=True)
    return float((((logits - reference) ** 2).sum(1) / np.maximum((centred ** 2).sum(1), 1e-12)).mean())


def quantize_onnx_budgeted(src: Path, dst: Path, ctx: BuildContext, workdir: Path) -> dict[str, Any]:
    """Steps 1-3 of the module's doc: ``dst`` is the QDQ model; returns what was decided and why."""
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from resnetbench.backends.onnx_quantize import CalibrationReader

    assert ctx.calibration is not None and ctx.validation is not None, "int8-budget needs calibration and validation"
    images, labels = ctx.validation
    calibration = ctx.calibration
    max_drop = float(ctx.settings["max_drop"])
    per_channel = bool(ctx.settings["per_channel"])
    workdir.mkdir(exist_ok=True)
    pre = workdir / "pre.onnx"
    ranges = workdir / "calibration.ranges"
    started = time.perf_counter()
    with Timer() as t:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        layers = quantizable_layers(pre)
        float_logits = _logits(pre, images, ctx.threads)
        float_top1 = _top1(float_logits, labels)

        def quantized(exclude: list[str], only: list[str] | None, name: str) -> Path:
            out = workdir / name
            quantize_static(str(pre), str(out), CalibrationReader("input", calibration),
                            nodes_to_exclude=exclude, nodes_to_quantize=only, calibration_cache_path=ranges,
                            **static_quantize_options(per_channel))
            return out

        def step(reverted: list[str]) -> dict[str, Any]:
            nodes = [node for node, layer in layers if layer in reverted]
            path = quantized(nodes, None, "candidate.onnx")
            top1 = _top1(_logits(path, images, ctx.threads), labels)
            shutil.copyfile(path, dst)
            return {"reverted": list(reverted), "top1": top1, "drop_points": float_top1 - top1}

        steps = [step([])]
        ranking: list[dict[str, Any]] = []
        if steps[-1]["drop_points"] > max_drop:
            for node, layer in layers:
                alone = _logits(quantized([], [node], "alone.onnx"), images, ctx.threads)
                ranking.append({"layer": layer, "error": _relative_error(alone, float_logits)})
            ranking.sort(key=lambda r: -r["error"])
            reverted: list[str] = []
            for entry in ranking:
                reverted.append(entry["layer"])
                steps.append(step(reverted))
                if steps[-1]["drop_points"] <= max_drop:
                    break
    final = steps[-1]
    budget = {
        "max_drop_points": max_drop, "per_channel": per_channel, "validation_images": int(len(images)),
        "validation_source": ctx.validation_source, "float_top1": float_top1,
        "full_int8_top1": steps[0]["top1"], "full_int8_drop_points": steps[0]["drop_points"],
        "top1": final["top1"], "drop_points": final["drop_points"], "met": final["drop_points"] <= max_drop,
        "reverted_layers": final["reverted"], "layers": len(layers), "ranking": ranking, "steps": steps,
        "search_s": round(time.perf_counter() - started, 2),
    }
    return {
        "quantize_s": t.seconds,
        "calibration_samples": int(len(calibration)),
        "quantizer": (f"onnxruntime.quantization.quantize_static(QDQ, {'per_channel' if per_channel else 'per-tensor'}, "
                      "U8 act / S8 weight, MinMax) with layers reverted to float until the top-1 drop fits"),
        "budget": budget,
    }
