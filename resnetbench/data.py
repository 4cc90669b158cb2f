"""Input sets: seeded synthetic inputs, scikit-learn's bundled digits, ImageNet-layout folders.

Each set carries a description of its preprocessing and the hash of it: accuracy
depends on preprocessing, so results record it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetError(Exception):
    """A dataset that cannot be read; the message names the path and the problem."""


@dataclass(frozen=True)
class InputSet:
    """Images ready for the model (N, 3, H, W fp32), labels when the set has them."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None
    pipeline: str

    @property
    def pipeline_hash(self) -> str:
        return hashlib.sha256(self.pipeline.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": int(self.images.shape[0]),
            "labelled": self.labels is not None,
            "pipeline": self.pipeline,
            "pipeline_hash": self.pipeline_hash,
        }


def synthetic(samples: int, size: int, seed: int = 0) -> InputSet:
    """Standard-normal images from a seeded generator: identical in every process."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(samples, 3, size, size, generator=gen)
    return InputSet("synthetic", images, None, f"randn(N,3,{size},{size}) seed={seed}")


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def digits(size: int, split: str = "test", seed: int = 0, test_fraction: float = 0.2) -> InputSet:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), upscaled and made RGB.

    The split is a seeded permutation, so train and test never overlap and every
    process sees the same test images.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(y) * test_fraction))
    idx = order[:n_test] if split == "test" else order[n_test:]
    x = F.interpolate(x[idx], size=(size, size), mode="bilinear", align_corners=False)
    x = _normalise(x.repeat(1, 3, 1, 1))
    pipeline = (
        f"sklearn.load_digits/16 split={split} seed={seed} frac={test_fraction} "
        f"bilinear->{size} gray->rgb normalize(mean={IMAGENET_MEAN},std={IMAGENET_STD})"
    )
    return InputSet("digits", x, y[idx], pipeline)


def imagefolder(path: str, size: int = 224, limit: int | None = None, labels: str | None = None) -> InputSet:
    """An ImageNet-layout folder with the standard resize 256 / center crop 224 pipeline."""
    from torchvision import datasets, transforms

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a directory of class folders")
    resize = round(size * 256 / 224)
    tf = transforms.Compose(
        [
            transforms.Resize(resize),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    try:
        ds = datasets.ImageFolder(str(root), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"dataset path {root}: {exc}") from None
    mapping: dict[str, int] | None = None
    if labels:
        try:
            mapping = json.loads(Path(labels).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"label mapping {labels}: {exc}") from None
    n = len(ds) if limit is None else min(limit, len(ds))
    # Take samples spread over the classes, deterministically.
    step = max(1, len(ds) // n)
    picks = list(range(0, len(ds), step))[:n]
    xs, ys = [], []
    for i in picks:
        img, target = ds[i]
        xs.append(img)
        cls = ds.classes[target]
        ys.append(mapping[cls] if mapping else target)
    pipeline = f"imagefolder resize={resize} centercrop={size} normalize(mean={IMAGENET_MEAN},std={IMAGENET_STD}) labels={'file' if labels else 'folder-index'}"
    return InputSet("imagefolder", torch.stack(xs), torch.tensor(ys), pipeline)


def input_set(dataset: dict[str, Any], size: int, seed: int = 0) -> InputSet:
    """The evaluation set a matrix's ``dataset`` section names."""
    name = dataset["name"]
    if name == "synthetic":
        return synthetic(dataset.get("samples", 64), size, dataset.get("seed", seed))
    if name == "digits":
        ds = digits(size, "test", dataset.get("seed", seed))
        limit = dataset.get("samples")
        if limit:
            return InputSet(ds.name, ds.images[:limit], ds.labels[:limit] if ds.labels is not None else None, ds.pipeline + f" limit={limit}")
        return ds
    if name == "imagefolder":
        return imagefolder(dataset["path"], size, dataset.get("samples"), dataset.get("labels"))
    raise DatasetError(f"unknown dataset {name!r}")


def calibration_set(dataset: dict[str, Any], size: int, samples: int, seed: int = 0) -> torch.Tensor:
    """Calibration images for static quantization: from the training side, never the test set."""
    name = dataset["name"]
    if name == "digits":
        return digits(size, "train", dataset.get("seed", seed)).images[:samples]
    if name == "imagefolder":
        return imagefolder(dataset["path"], size, samples).images
    return synthetic(samples, size, seed + 1).images
