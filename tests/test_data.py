"""Input sets: ImageNet wnid folders get ImageNet labels, calibration never overlaps evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import by_id

from resnetbench import data


def image_folder(root: Path, classes: list[str], per_class: int, size: int = 40) -> Path:
    """Class folders of small random PNGs (real files through torchvision's ImageFolder)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return root


def test_imagenet_wnids_are_the_1000_classes_in_index_order():
    wnids = data.imagenet_wnids()
    assert len(wnids) == 1000
    assert wnids["n01440764"] == 0 and wnids["n01530575"] == 10 and wnids["n01531178"] == 11
    assert wnids["n15075141"] == 999
    assert list(wnids) == sorted(wnids)


def test_wnid_folders_are_labelled_with_their_imagenet_index(tmp_path):
    root = image_folder(tmp_path / "val", ["n01530575", "n01531178"], 3)
    s = data.imagefolder(str(root), size=32)
    assert sorted(set(s.labels.tolist())) == [10, 11]
    assert "labels=imagenet-wnid" in s.pipeline


def test_other_folders_keep_the_folder_index_and_a_labels_file_wins(tmp_path):
    root = image_folder(tmp_path / "val", ["cat", "dog"], 2)
    assert sorted(set(data.imagefolder(str(root), size=32).labels.tolist())) == [0, 1]
    labels = tmp_path / "labels.json"
    labels.write_text('{"cat": 281, "dog": 207}')
    s = data.imagefolder(str(root), size=32, labels=str(labels))
    assert sorted(set(s.labels.tolist())) == [207, 281] and "labels=file" in s.pipeline
    labels.write_text('{"cat": 281}')
    with pytest.raises(data.DatasetError, match="no label for class folder"):
        data.imagefolder(str(root), size=32, labels=str(labels))


def test_calibration_never_uses_an_evaluation_image(tmp_path):
    root = image_folder(tmp_path / "val", ["n01440764", "n01443537"], 6)
    dataset = {"name": "imagefolder", "path": str(root), "samples": 6}
    evaluation = data.input_set(dataset, 32)
    cal = data.calibration_set(dataset, 32, samples=4)
    assert len(evaluation.sources) == 6 and len(cal.images) == 4
    assert cal.overlap_with_evaluation == 0
    assert "images the evaluation set does not use" in cal.source
    # every image is either evaluated or available for calibration, never both
    rest = data.imagefolder(str(root), 32, None, None, frozenset(evaluation.sources))
    assert not set(rest.sources) & set(evaluation.sources)
    assert len(rest.sources) + len(evaluation.sources) == 12


def test_a_separate_calibration_folder_is_used_and_named(tmp_path):
    root = image_folder(tmp_path / "val", ["n01440764"], 3)
    cal_root = image_folder(tmp_path / "train", ["n01440764"], 5)
    dataset = {"name": "imagefolder", "path": str(root), "calibration": str(cal_root)}
    cal = data.calibration_set(dataset, 32, samples=4)
    assert len(cal.images) == 4 and "(separate folder)" in cal.source


def test_no_image_left_for_calibration_is_a_clear_error(tmp_path):
    root = image_folder(tmp_path / "val", ["n01440764"], 3)
    with pytest.raises(data.DatasetError, match="no images left to take once the evaluation images are set aside"):
        data.calibration_set({"name": "imagefolder", "path": str(root)}, 32, samples=4)


def test_synthetic_and_digits_calibration_are_disjoint_from_evaluation():
    assert "seed=1" in data.calibration_set({"name": "synthetic"}, 16, 4).source
    assert "training split" in data.calibration_set({"name": "digits"}, 16, 4).source


@pytest.mark.slow
def test_labels_that_cannot_match_the_head_are_undecidable_end_to_end(tmp_path, run_matrix, pytester):
    """Two class folders named cat/dog under an ImageNet model: labels 0/1, the model never says so."""
    root = image_folder(pytester.path / "val", ["cat", "dog"], 4)
    matrix = f"""
matrix:
  arch: [resnet18]
dataset: {{name: imagefolder, path: {root}}}
input_size: 32
tuning: {{enabled: false}}
claims: false
"""
    result, results = run_matrix(matrix, "-m", "accuracy")
    case = by_id(results)["resnet18-fp32-none-eager-b1"]
    # the output-level checks decide fp32 against its golden run; the default fp32
    # tolerances have no task metric, so ask for one: it must not pass
    assert case["accuracy"]["task"]["undecidable"].startswith("the fp32 reference's own top-1")
    tightened = matrix + "tolerances: {dtype: {fp32: {top1_drop_points: 1.0}}}\n"
    result, results = run_matrix(tightened, "-m", "accuracy")
    case = by_id(results)["resnet18-fp32-none-eager-b1"]
    assert case["outcome"] == "failed" and case["accuracy"]["verdict"] == "undecidable"
    assert "the labels cannot match the model's head" in case["accuracy"]["message"]
