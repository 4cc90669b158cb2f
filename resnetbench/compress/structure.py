"""A transformed model as data: its tensors and a JSON description, never a pickled module.

A model transform (``Method.prepare``) returns a module of a registered architecture
whose layers may differ from the architecture's: structured pruning (Torch-Pruning)
gives Conv2d, BatchNorm2d and Linear layers fewer channels, a BatchNorm folded into its
convolution (``fuse``) leaves the convolution a bias and no BatchNorm, distillation
trains a fresh student of the case's architecture. Such a model is stored as its
state_dict (safetensors: a JSON header and raw tensor bytes, nothing to execute) and a
description of those layers (``describe``), and ``rebuild`` makes it again from the
architecture registry (``models.build_model``): each Conv2d/BatchNorm2d/Linear takes the
channel counts, groups and bias the description gives it, keeping the architecture's
kernel sizes, strides and paddings, and a layer the transformed model no longer has
becomes ``nn.Identity``; then the tensors load with ``strict=True``. ``round_trip``
checks, when a model is stored, that the rebuilt module has the same layers and
tensors and gives bit-identical outputs; a transform whose result this cannot express
fails there, when it is made, not later.

The artifact cache's manifest check guards the stored files; this format is what makes a
file that slipped through still only data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench.models import build_model

STRUCTURE_FORMAT = 1
LAYERS: dict[str, type[nn.Module]] = {"Conv2d": nn.Conv2d, "BatchNorm2d": nn.BatchNorm2d, "Linear": nn.Linear}
TENSORS_FILE = "model.safetensors"
STRUCTURE_FILE = "structure.json"


class StructureError(ValueError):
    """A description that does not fit its architecture, or a module it cannot express."""


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if type(m) in LAYERS.values()}


def _spec(m: nn.Module) -> dict[str, Any]:
    if isinstance(m, nn.Conv2d):
        return {"type": "Conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups,
                "bias": m.bias is not None}
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "num_features": m.num_features, "affine": m.affine,
                "track_running_stats": m.track_running_stats}
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}
    raise StructureError(f"not a layer this format describes: {type(m).__name__}")


def describe(model: nn.Module, arch: str, num_classes: int | None = None) -> dict[str, Any]:
    """The JSON description of ``model`` as a variant of the registered architecture ``arch``.

    ``num_classes`` defaults to the out_features of the model's last Linear layer.
    """
    if num_classes is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        num_classes = linears[-1].out_features if linears else 1000
    reference = _layers(build_model(arch, num_classes))
    layers = _layers(model)
    foreign = sorted(set(layers) - set(reference))
    if foreign:
        raise StructureError(f"{arch}: the transformed model has layers the architecture has not: {', '.join(foreign[:5])}")
    out: dict[str, Any] = {}
    for name, ref in reference.items():
        if name not in layers:
            out[name] = {"type": "Identity"}  # removed (a BatchNorm folded into its convolution)
        elif type(layers[name]) is not type(ref):
            raise StructureError(f"{arch}: {name} is a {type(layers[name]).__name__}, the architecture's a "
                                 f"{type(ref).__name__}")
        else:
            out[name] = _spec(layers[name])
    return {"format": STRUCTURE_FORMAT, "arch": arch, "num_classes": num_classes, "layers": out}


def _int(spec: dict[str, Any], key: str) -> int:
    value = spec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1 << 20:
        raise StructureError(f"{key}: {value!r} is not a channel count")
    return value


def _flag(spec: dict[str, Any], key: str) -> bool:
    value = spec.get(key)
    if not isinstance(value, bool):
        raise StructureError(f"{key}: {value!r} is not true or false")
    return value


def _reshaped(ref: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """A layer like ``ref`` (its kernel, stride, padding, eps...) with the described channels;
    ``ref`` itself when nothing differs. New layers are not initialised: the tensors load next."""
    kind = spec.get("type")
    if kind == "Identity":
        return nn.Identity()
    if kind != type(ref).__name__:
        raise StructureError(f"a {kind!r} where the architecture has a {type(ref).__name__}")
    if isinstance(ref, nn.Conv2d):
        args: dict[str, Any] = {"in_channels": _int(spec, "in_channels"), "out_channels": _int(spec, "out_channels"),
                                "groups": _int(spec, "groups"), "bias": _flag(spec, "bias")}
        if {**args, "type": kind} == _spec(ref):
            return ref
        return nn.utils.skip_init(nn.Conv2d, kernel_size=ref.kernel_size, stride=ref.stride, padding=ref.padding,
                                  dilation=ref.dilation, padding_mode=ref.padding_mode, **args)
    if isinstance(ref, nn.BatchNorm2d):
        args = {"num_features": _int(spec, "num_features"), "affine": _flag(spec, "affine"),
                "track_running_stats": _flag(spec, "track_running_stats")}
        if {**args, "type": kind} == _spec(ref):
            return ref
        return nn.utils.skip_init(nn.BatchNorm2d, eps=ref.eps, momentum=ref.momentum, **args)
    if isinstance(ref, nn.Linear):
        args = {"in_features": _int(spec, "in_features"), "out_features": _int(spec, "out_features"),
                "bias": _flag(spec, "bias")}
        if {**args, "type": kind} == _spec(ref):
            return ref
        return nn.utils.skip_init(nn.Linear, **args)
    raise StructureError(f"not a layer this format describes: {type(ref).__name__}")


def rebuild(description: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The module ``description`` and ``state`` describe, made from the architecture registry (eval mode)."""
    if not isinstance(description, dict) or description.get("format") != STRUCTURE_FORMAT:
        raise StructureError(f"not a structure description of format {STRUCTURE_FORMAT}")
    arch, layers = description.get("arch"), description.get("layers")
    if not isinstance(arch, str) or not isinstance(layers, dict):
        raise StructureError("a structure description names an architecture and its layers")
    num_classes = description.get("num_classes", 1000)
    model = build_model(arch, _int({"num_classes": num_classes}, "num_classes"))
    reference = _layers(model)
    if set(layers) != set(reference):
        missing, extra = sorted(set(reference) - set(layers)), sorted(set(layers) - set(reference))
        raise StructureError(f"{arch}: the description's layers are not the architecture's "
                             f"(missing: {', '.join(missing[:5]) or '-'}; unknown: {', '.join(extra[:5]) or '-'})")
    for name, ref in reference.items():
        spec = layers[name]
        if not isinstance(spec, dict):
            raise StructureError(f"{arch}: {name}: not a layer description")
        try:
            new = _reshaped(ref, spec)
        except StructureError as exc:
            raise StructureError(f"{arch}: {name}: {exc}") from None
        if new is not ref:
            model.set_submodule(name, new)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise StructureError(f"{arch}: the tensors do not fit the described layers: {str(exc)[:500]}") from None
    return model.eval()


def save(model: nn.Module, arch: str, out: Path, num_classes: int | None = None) -> dict[str, Any]:
    """Write ``model`` as ``model.safetensors`` and ``structure.json`` into ``out``; returns the description."""
    from safetensors.torch import save_file

    description = describe(model, arch, num_classes)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / TENSORS_FILE))
    (out / STRUCTURE_FILE).write_text(json.dumps(description, indent=1), encoding="utf-8")
    return description


def load(src: Path) -> nn.Module:
    """The module ``save`` wrote into ``src``: tensors (never code) onto a registry architecture."""
    from safetensors.torch import load_file

    try:
        description = json.loads((src / STRUCTURE_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StructureError(f"{src / STRUCTURE_FILE}: not JSON ({exc})") from None
    return rebuild(description, load_file(str(src / TENSORS_FILE), device="cpu"))


def round_trip(original: nn.Module, rebuilt: nn.Module, sample: torch.Tensor) -> None:
    """Raise ``StructureError`` unless ``rebuilt`` has ``original``'s parameter-holding layers, the
    same tensors and bit-identical outputs on ``sample``."""
    a, b = original.state_dict(), rebuilt.state_dict()
    if set(a) != set(b):
        raise StructureError(f"the stored model's tensors differ in name: {sorted(set(a) ^ set(b))[:5]}")
    changed = [k for k in a if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    if changed:
        raise StructureError(f"the stored model's tensors differ: {changed[:5]}")
    with torch.inference_mode():
        same = torch.equal(original.eval()(sample), rebuilt.eval()(sample))
    if not same:
        raise StructureError("the module rebuilt from its tensors computes something else than the transformed one "
                             "(its forward is not the architecture's)")
