"""ONNX export shared by the ONNX Runtime and OpenVINO backends.

The exporter is chosen deliberately: ``dynamo=True`` (torch.export based) is the
maintained path; the TorchScript-based exporter is deprecated. It writes the weights to
an external ``.data`` file beside a small ``.onnx``: both are the artifact.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OPSET = 18


def export_onnx(model: nn.Module, sample: torch.Tensor, path: Path) -> list[str]:
    """Export with a dynamic batch axis; returns the file names written beside ``path``."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(quiet):
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamo=True,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=True,
            verbose=False,
        )
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


def bf16_weight_storage(src: Path, dst: Path) -> int:
    """Store float initializers as bfloat16 with a Cast back to fp32 before use.

    ONNX Runtime's CPU execution provider has no bfloat16 Conv kernel, so a bf16 ONNX
    model cannot run there; storing the weights in bf16 halves the artifact and keeps
    their rounding, while compute stays fp32. Returns the number of tensors converted.
    """
    model = onnx.load(str(src))
    graph = model.graph
    converted = 0
    new_inits = []
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 1:
            new_inits.append(init)
            continue
        arr = numpy_helper.to_array(init).astype(np.float32)
        bits = (arr.view(np.uint32) + 0x7FFF + ((arr.view(np.uint32) >> 16) & 1)) >> 16  # round to nearest even
        bf = helper.make_tensor(init.name + "_bf16", TensorProto.BFLOAT16, list(init.dims), bits.astype(np.uint16).tobytes(), raw=True)
        new_inits.append(bf)
        casts.append(helper.make_node("Cast", [bf.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"))
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.save(model, str(dst), save_as_external_data=True, location=dst.name + ".data", size_threshold=1024)
    return converted


def single_file(src: Path, dst: Path) -> Path:
    """Re-save a model with its weights inline: ORT's quantization tools copy the model
    to a temporary folder and lose the external ``.data`` file otherwise (< 2 GB here)."""
    onnx.save(onnx.load(str(src)), str(dst))
    return dst


def onnx_files(directory: Path, stem: str) -> list[str]:
    """The .onnx file and its external data, by name."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(stem) and not p.name.endswith(".tmp"))


def op_histogram(path: Path) -> dict[str, int]:
    """How many nodes of each op type a model has (tells what a quantizer touched)."""
    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
