"""Input sets: seeded synthetic inputs, scikit-learn's bundled digits, ImageNet-layout folders.

Each set carries a description of its preprocessing and the hash of it: accuracy
depends on preprocessing, so results record it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from resnetbench.settings import SYNTHETIC_SAMPLES

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
    sources: tuple[str, ...] | None = None  # image files, for sets read from disk

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


WNID = re.compile(r"n\d{8}")


@cache
def imagenet_wnids() -> dict[str, int]:
    """ImageNet-1k WordNet ids -> class index (the standard order: the ids sorted)."""
    wnids = (Path(__file__).parent / "imagenet_wnids.txt").read_text().split()
    return {wnid: i for i, wnid in enumerate(wnids)}


def folder_labels(classes: list[str], labels: str | None) -> tuple[dict[str, int], str]:
    """Each class folder's label and where it came from: a labels file, ImageNet wnids, or the folder index.

    Folder names like ``n01440764`` are ImageNet WordNet ids: their label is the ImageNet
    class index, not the folder's position (two class folders of ImageNet would otherwise
    be labelled 0 and 1, which no ImageNet head can match).
    """
    if labels:
        try:
            mapping = json.loads(Path(labels).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"label mapping {labels}: {exc}") from None
        missing = [c for c in classes if c not in mapping]
        if missing:
            raise DatasetError(f"label mapping {labels} has no label for class folder(s) {', '.join(missing[:5])}")
        return {c: int(mapping[c]) for c in classes}, "file"
    wnids = imagenet_wnids()
    if classes and all(WNID.fullmatch(c) and c in wnids for c in classes):
        return {c: wnids[c] for c in classes}, "imagenet-wnid"
    return {c: i for i, c in enumerate(classes)}, "folder-index"


def _folder(path: str, size: int) -> Any:
    """torchvision's ImageFolder with the standard resize 256 / center crop 224 pipeline."""
    from torchvision import datasets, transforms

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a directory of class folders")
    tf = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    try:
        return datasets.ImageFolder(str(root), transform=tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"dataset path {root}: {exc}") from None


def spread_picks(indices: list[int], n: int) -> list[int]:
    """``n`` of ``indices`` spread evenly over them (so over the classes), deterministically."""
    n = min(n, len(indices))
    if n <= 0:
        return []
    step = len(indices) / n
    return [indices[int(i * step)] for i in range(n)]


def _picks(ds: Any, limit: int | None, exclude: frozenset[str]) -> list[int]:
    """Indices of the images a set takes: spread over the folder, none of ``exclude``."""
    allowed = [i for i, (file, _) in enumerate(ds.samples) if file not in exclude]
    return spread_picks(allowed, len(allowed) if limit is None else limit)


def imagefolder(path: str, size: int = 224, limit: int | None = None, labels: str | None = None,
                exclude: frozenset[str] = frozenset()) -> InputSet:
    """An ImageNet-layout folder; ``exclude`` names image files that must not be used (the evaluation set's)."""
    ds = _folder(path, size)
    mapping, label_source = folder_labels(ds.classes, labels)
    picks = _picks(ds, limit, exclude)
    if not picks:
        if not exclude:
            raise DatasetError(f"dataset path {path}: no images left to take")
        taken = sum(1 for file, _ in ds.samples if file in exclude)
        raise DatasetError(
            f"dataset path {path}: no images left to take once the evaluation images are set aside (the "
            f"evaluation takes {taken} of its {len(ds.samples)}): lower dataset.samples, add images, or name a "
            f"separate calibration folder with dataset.calibration")
    xs, ys, files = [], [], []
    for i in picks:
        img, target = ds[i]
        xs.append(img)
        ys.append(mapping[ds.classes[target]])
        files.append(ds.samples[i][0])
    pipeline = (f"imagefolder resize={round(size * 256 / 224)} centercrop={size} "
                f"normalize(mean={IMAGENET_MEAN},std={IMAGENET_STD}) labels={label_source}")
    return InputSet("imagefolder", torch.stack(xs), torch.tensor(ys), pipeline, tuple(files))


def input_set(dataset: Mapping[str, Any], size: int, seed: int = 0) -> InputSet:
    """The evaluation set a matrix's ``dataset`` section names."""
    name = dataset["name"]
    if name == "synthetic":
        return synthetic(dataset.get("samples", SYNTHETIC_SAMPLES), size, dataset.get("seed", seed))
    if name == "digits":
        ds = digits(size, "test", dataset.get("seed", seed))
        limit = dataset.get("samples")
        if limit:
            return InputSet(ds.name, ds.images[:limit], ds.labels[:limit] if ds.labels is not None else None, ds.pipeline + f" limit={limit}")
        return ds
    if name == "imagefolder":
        return imagefolder(dataset["path"], size, dataset.get("samples"), dataset.get("labels"))
    raise DatasetError(f"unknown dataset {name!r}")


MIN_VALIDATION_SAMPLES = 50


def validation_set(dataset: Mapping[str, Any], size: int, samples: int, seed: int = 0) -> InputSet:
    """Labelled images that decide an accuracy budget (``compress/int8_budget.py``): never
    training, calibration or evaluation images, so the evaluation's drop is not tuned on.

    digits: the test split's images after the ``samples`` the evaluation uses (the model was
    trained on the training split, which also holds the calibration images).
    """
    name = dataset["name"]
    if name != "digits":
        raise DatasetError(f"dataset {name!r}: an accuracy budget needs labelled validation images apart from the "
                           "evaluation images; use dataset: {name: digits, samples: 180} (its other test images "
                           "validate)")
    test = digits(size, "test", dataset.get("seed", seed))
    used = dataset.get("samples") or len(test.images)
    left = len(test.images) - used
    if left < MIN_VALIDATION_SAMPLES:
        raise DatasetError(f"dataset digits: samples {used} leaves {max(left, 0)} of its {len(test.images)} test "
                           f"images for the accuracy budget's validation (needs {MIN_VALIDATION_SAMPLES}); "
                           f"set dataset.samples to at most {len(test.images) - MIN_VALIDATION_SAMPLES}")
    end = used + min(samples, left)
    assert test.labels is not None  # digits() always carries labels
    return InputSet(test.name, test.images[used:end], test.labels[used:end],
                    test.pipeline + f" validation=[{used}:{end}] (the evaluation uses [0:{used}])")


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration images for static quantization, and where they came from (recorded in the results)."""

    images: torch.Tensor
    source: str
    overlap_with_evaluation: int


def calibration_set(dataset: Mapping[str, Any], size: int, samples: int, seed: int = 0) -> CalibrationSet:
    """Calibration images that are never evaluation images (MLPerf's rule: calibrating on the
    test set flatters int8 accuracy).

    digits: the training split. imagefolder: ``calibration: DIR`` when given, else the
    folder's images that the evaluation set does not use. synthetic: another seed.
    """
    name = dataset["name"]
    if name == "digits":
        train = digits(size, "train", dataset.get("seed", seed))
        return CalibrationSet(train.images[:samples], "digits training split (disjoint from the test split)", 0)
    if name == "imagefolder":
        # The evaluation set's files, without decoding its images again.
        ds = _folder(dataset["path"], size)
        held_out = frozenset(ds.samples[i][0] for i in _picks(ds, dataset.get("samples"), frozenset()))
        if dataset.get("calibration"):
            cal = imagefolder(dataset["calibration"], size, samples, dataset.get("labels"), held_out)
            source = f"imagefolder {dataset['calibration']} (separate folder)"
        else:
            cal = imagefolder(dataset["path"], size, samples, dataset.get("labels"), held_out)
            source = f"imagefolder {dataset['path']}: {len(cal.images)} images the evaluation set does not use"
        overlap = len(held_out & set(cal.sources or ()))
        return CalibrationSet(cal.images, source, overlap)
    evaluation_seed = dataset.get("seed", seed)
    images = synthetic(samples, size, evaluation_seed + 1).images
    return CalibrationSet(images, f"synthetic randn seed={evaluation_seed + 1} (evaluation: seed {evaluation_seed})", 0)
