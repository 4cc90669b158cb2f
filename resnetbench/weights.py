"""Weights for a case's model: random from a seed, torchvision's, a checkpoint, or trained on digits.

Never downloads and never unpickles code: runs are offline and reproducible.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from resnetbench.cache import ArtifactCache, default_cache_dir
from resnetbench.config import TRAIN_DEFAULTS
from resnetbench.models import WeightsError, build_model
from resnetbench.train import DEFAULT_SIZE, train_digits


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


def create_model(
    arch: str, weights: dict[str, Any], num_classes: int = 1000, cache: ArtifactCache | None = None
) -> nn.Module:
    """The one factory: an eval-mode fp32 model with the requested weights."""
    source = weights["source"]
    if source == "random":
        return build_model(arch, num_classes, weights.get("seed", 0))
    if source == "torchvision":
        return _torchvision_pretrained(arch, num_classes)
    if source == "path":
        model = build_model(arch, num_classes, 0)
        path = Path(weights["path"])
        try:
            model.load_state_dict(load_checkpoint(path))
        except RuntimeError as exc:  # names or shapes of another architecture
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"weights file {path} does not fit {arch}: {first[:300]}") from None
        return model
    if source == "train":
        return trained_model(arch, weights, cache)
    raise WeightsError(f"unknown weights source {source!r}")


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from ``.safetensors`` or a torch file, never unpickling code.

    The file is checked first as the matrix validator checks it (``config.checkpoint_problem``:
    complete, and a pickle that names only what torch's weights-only loader accepts), and
    whatever the loaders still raise becomes a WeightsError naming the file.
    """
    from resnetbench.inputs.checkpoints import checkpoint_problem

    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    problem = checkpoint_problem(path)
    if problem:
        raise WeightsError(f"weights file {path} {problem}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, SafetensorError: the file, not our code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights file {path} cannot be loaded: {first[:300]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} holds a {type(state).__name__}, not a state_dict")
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


def trained_model(arch: str, weights: dict[str, Any], cache: ArtifactCache | None = None) -> nn.Module:
    """The digits-trained model for a ``{source: train}`` weights spec, trained once per cache.

    An entry of the artifact cache (``weights/``) like every artifact, so its signed manifest
    guards it: a changed or truncated file is retrained, never loaded.
    """
    cache = cache or ArtifactCache(default_cache_dir())
    seed = weights.get("seed", 0)

    def train(out: Path) -> dict[str, Any]:
        model, info = train_digits(arch, epochs=weights.get("epochs", TRAIN_DEFAULTS["epochs"]), seed=seed,
                                   size=weights.get("size", DEFAULT_SIZE))
        torch.save(model.state_dict(), out / "model.pt")
        return {"files": ["model.pt"], "training": info}

    name = f"{arch}-{weights_id(weights)}"
    entry, _ = cache.get_or_build("weights", name, {"arch": arch, "weights": weights_id(weights)}, train)
    model = build_model(arch, num_classes=10, seed=seed)
    model.load_state_dict(torch.load(entry / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()
