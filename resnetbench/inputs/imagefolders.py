"""Image folders a matrix names (``dataset: {name: imagefolder}``): checked when the matrix is
loaded, without torch and without decoding an image, so ``resnetbench validate`` refuses a folder
ImageFolder would refuse (or that holds too few images) before anything runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from resnetbench.inputs import shown

__all__ = ["IMAGE_EXTENSIONS", "count_images", "has_image", "imagefolder_problem", "labels_problem"]

# torchvision's ImageFolder takes these (torchvision.datasets.folder.IMG_EXTENSIONS), any case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Directory entries read in all looking for one image per class folder (a folder of a few
# thousand classes has its first images well within it).
IMAGE_SCAN_BUDGET = 50_000
MAX_LABELS_BYTES = 1_000_000  # a label mapping of 1,000 classes is ~20 KB


def imagefolder_problem(root: Path) -> str | None:
    """What keeps torchvision's ImageFolder from reading ``root``; None when it can.

    It needs class folders, each with at least one image file somewhere below it.
    """
    if not root.exists():
        return f"no such directory {root.absolute()}."
    if not root.is_dir():
        return f"{root} is a file, not a directory of class folders."
    try:
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    except OSError as exc:
        return f"cannot read {root}: {exc.strerror or exc}."
    if not classes:
        return f"{root} has no class folders (an ImageNet-layout folder holds one folder of images per class)."
    budget = [IMAGE_SCAN_BUDGET]
    empty = [c for c in classes if not has_image(root / c, budget)]
    if empty:
        return (f"{root}: class folder(s) {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''} hold no image "
                f"({', '.join(IMAGE_EXTENSIONS)}).")
    return None


def count_images(root: Path, enough: int | None = None) -> tuple[int, bool]:
    """How many images torchvision's ImageFolder takes from ``root`` (every class folder walked,
    links followed, files with an image extension), and whether that is the whole count.

    Counting stops at ``enough`` (the count is then ``enough``: at least that many) and after
    ``IMAGE_SCAN_BUDGET`` directory entries (the count is then a lower bound, and False says so).
    A folder that links back into itself is walked once along each path.
    """
    budget, count = IMAGE_SCAN_BUDGET, 0
    try:
        classes = sorted(Path(entry.path) for entry in os.scandir(root) if entry.is_dir())
    except OSError:
        return 0, False  # imagefolder_problem reported it
    for folder in classes:
        stack: list[tuple[Path, frozenset[tuple[int, int]]]] = [(folder, frozenset())]
        while stack:
            current, ancestors = stack.pop()
            try:
                info = current.stat()
                entries = list(os.scandir(current))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in ancestors:
                continue
            inside = ancestors | {(info.st_dev, info.st_ino)}
            for entry in entries:
                budget -= 1
                if budget < 0:
                    return count, False
                try:
                    if entry.is_dir():
                        stack.append((Path(entry.path), inside))
                        continue
                except OSError:
                    pass  # os.walk takes it for a file
                if entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    count += 1
                    if enough is not None and count >= enough:
                        return count, True
    return count, True


def has_image(folder: Path, budget: list[int]) -> bool:
    """Whether an image file lies anywhere below ``folder`` (links followed, each directory once).

    Reads at most ``budget[0]`` directory entries (shared by the calls of one check): past
    that (a huge folder, or ``path: /``) it cannot tell and says yes; ImageFolder decides then.
    """
    stack, seen = [folder], set()
    if budget[0] <= 0:
        return True
    while stack:
        current = stack.pop()
        try:
            info = current.stat()
            entries = list(os.scandir(current))
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            budget[0] -= 1
            if budget[0] < 0:
                return True
            try:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    return True
            except OSError:
                continue
    return False


def labels_problem(labels: Path, folders: list[Path], num_classes: int) -> str | None:
    """What is wrong with a ``labels:`` file (JSON: class folder name -> class index) for these folders."""
    try:
        if labels.exists() and not labels.is_dir() and not labels.is_file():
            return f"{labels} is not a regular file (a device or a pipe?): name a JSON file."
        if labels.stat().st_size > MAX_LABELS_BYTES:
            return f"{labels} is too large for a label mapping ({labels.stat().st_size:,} bytes)."
        mapping = json.loads(labels.read_bytes())
    except FileNotFoundError:
        return f"no such file {labels}."
    except IsADirectoryError:
        return f"{labels} is a directory; labels: names a JSON file."
    except OSError as exc:
        return f"cannot read {labels}: {exc.strerror or exc}."
    except (ValueError, RecursionError):
        return f"{labels} is not JSON (it maps each class folder to its class index, e.g. {{\"cat\": 281}})."
    if not isinstance(mapping, dict):
        return f"{labels} must hold a JSON object mapping each class folder to its class index."
    for folder in folders:
        try:
            classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        except OSError:
            continue  # imagefolder_problem reported it
        missing = [c for c in classes if c not in mapping]
        if missing:
            return f"{labels} has no label for class folder(s) {', '.join(missing[:5])} of {folder}."
        for name in classes:
            value = mapping[name]
            index = value if isinstance(value, int) and not isinstance(value, bool) else (
                int(value) if isinstance(value, str) and value.isdigit() else None)
            if index is None or not 0 <= index < num_classes:
                return (f"{labels}: class folder {name!r} has label {shown(value)}; a label is a class index "
                        f"from 0 to {num_classes - 1}.")
    return None
