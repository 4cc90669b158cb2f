"""Architecture registry and the one model factory.

Built-ins are torchvision's resnet18..152 (the canonical definitions). Users add an
architecture with ``@register_arch("name")`` in an imported module, an entry point in
the ``resnetbench.architectures`` group, or ``architectures: {name: "pkg.mod:fn"}`` in
the matrix; it then takes part in every test like a built-in one.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from resnetbench.config import BUILTIN_ARCHS

ModelFactory = Callable[..., nn.Module]
ARCHS: dict[str, ModelFactory] = {}


class WeightsError(Exception):
    """Weights that cannot be obtained; the message says what to do."""


def register_arch(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory ``fn(num_classes: int) -> nn.Module`` under ``name``.

    Example::

        @register_arch("resnet18-narrow")
        def resnet18_narrow(num_classes: int = 1000) -> nn.Module:
            return torchvision.models.resnet.ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width_per_group=32)
    """

    def add(fn: ModelFactory) -> ModelFactory:
        ARCHS[name] = fn
        return fn

    return add


for _name in BUILTIN_ARCHS:
    register_arch(_name)(getattr(torchvision.models, _name))


def load_entry_point_archs() -> None:
    """Register architectures that installed packages declare as entry points."""
    for ep in entry_points(group="resnetbench.architectures"):
        if ep.name not in ARCHS:
            ARCHS[ep.name] = ep.load()


def load_import_path_archs(paths: dict[str, str]) -> None:
    """Register ``name: 'pkg.module:function'`` entries from a matrix file."""
    for name, target in paths.items():
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
            ARCHS[name] = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise WeightsError(f"architectures.{name}: cannot import {target!r}: {exc}") from None


def weights_id(weights: dict[str, Any]) -> str:
    """A stable identity of a weights spec, for cache keys and results."""
    source = weights["source"]
    if source == "random":
        return f"random-seed{weights.get('seed', 0)}"
    if source == "torchvision":
        return "torchvision-default"
    if source == "path":
        path = Path(weights["path"])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else "missing"
        return f"file-{path.name}-{digest}"
    if source == "train":
        spec = {k: weights[k] for k in sorted(weights) if k != "source"}
        return "trained-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    raise WeightsError(f"unknown weights source {source!r}")


def build_model(arch: str, num_classes: int = 1000, seed: int = 0) -> nn.Module:
    """A freshly initialised model, bit-identical for the same arch and seed in any process."""
    try:
        factory = ARCHS[arch]
    except KeyError:
        raise WeightsError(f"unknown architecture {arch!r}; registered: {', '.join(ARCHS)}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(num_classes=num_classes)
    return model.eval()


def create_model(
    arch: str, weights: dict[str, Any], num_classes: int = 1000, cache_dir: Path | None = None
) -> nn.Module:
    """The one factory: an eval-mode fp32 model with the requested weights."""
    source = weights["source"]
    if source == "random":
        return build_model(arch, num_classes, weights.get("seed", 0))
    if source == "torchvision":
        return _torchvision_pretrained(arch, num_classes)
    if source == "path":
        model = build_model(arch, num_classes, 0)
        model.load_state_dict(load_checkpoint(Path(weights["path"])))
        return model
    if source == "train":
        from resnetbench.train import trained_model

        return trained_model(arch, weights, cache_dir)
    raise WeightsError(f"unknown weights source {source!r}")


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``.safetensors`` or a torch file, never unpickling code."""
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def _torchvision_pretrained(arch: str, num_classes: int) -> nn.Module:
    if num_classes != 1000:
        raise WeightsError("torchvision weights are ImageNet weights: num_classes must be 1000")
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise WeightsError(f"torchvision has no pretrained weights for {arch!r}") from None
    w = enum.DEFAULT
    filename = w.url.rsplit("/", 1)[-1]
    target = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not target.exists():
        # Never download: runs are offline and reproducible. Say where the file goes.
        raise WeightsError(
            f"{arch}: torchvision weights {w} are not on this machine and resnetbench does not "
            f"download. Fetch {w.url} on a machine with network and put it at {target} "
            f"(or set TORCH_HOME), or use weights: {{source: path, path: FILE}}."
        )
    model = build_model(arch, num_classes)
    model.load_state_dict(torch.load(target, map_location="cpu", weights_only=True))
    return model


def num_classes_for(weights: dict[str, Any]) -> int:
    """Classes of the head: 10 for models trained on digits, else ImageNet's 1000."""
    if weights["source"] == "train":
        return 10
    return int(weights.get("num_classes", 1000))
