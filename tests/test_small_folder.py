"""An image folder too small for the evaluation images plus disjoint calibration images.

Static int8 calibrates on images the evaluation set does not use (``data.calibration_set``).
A folder that cannot supply both used to error in every test of every static case at run
time ("no images left to take once the evaluation images are set aside"); now
``resnetbench validate`` and ``pytest --matrix`` refuse it before anything runs, naming the
folder, the counts and the keys to change. No model is built here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resnetbench import cli
from resnetbench.config import ConfigError, load_config
from resnetbench.matrix import expand

STATIC = "matrix:\n  arch: [resnet18]\n  dtype: [int8]\n  compression: [static]\n"


def tiny_images(root: Path, per_class: int, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """Class folders of 4x4 PNGs (never decoded here: the refusal comes before any image is read)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, size=(4, 4, 3), dtype=np.uint8)).save(root / cls / f"{i:02d}.png")
    return root


def _matrix(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        expand(load_config(path))
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 700, msg
    return msg


def test_twelve_images_without_samples_cannot_also_calibrate(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The user's report: 12 images, ``dataset: {name: imagefolder, path: val}``, static int8."""
    val = tiny_images(tmp_path / "val", 6)
    path = _matrix(tmp_path, STATIC + "dataset: {name: imagefolder, path: val}\n")
    msg = _refusal(path)
    assert msg.startswith(f"{path}:5: dataset.path: {val} "), msg
    for words in ("evaluation 12", "dataset.samples is not set",
                  "calibration 64 (the default of compression_settings.static.calibration_samples)",
                  "= 76 images needed, 12 found",
                  "'static'", "dataset.calibration"):
        assert words in msg, f"{words!r} not in {msg!r}"
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"resnetbench: error: {msg}\n"


def test_samples_and_calibration_samples_that_add_up_to_more_than_the_folder(tmp_path: Path) -> None:
    val = tiny_images(tmp_path / "val", 6)
    path = _matrix(tmp_path, STATIC + "dataset:\n  name: imagefolder\n  path: val\n  samples: 8\n"
                   "compression_settings:\n  static: {calibration_samples: 8}\n")
    msg = _refusal(path)
    assert msg.startswith(f"{path}:8: dataset.samples: {val} "), msg  # the line of samples: 8
    for words in ("evaluation 8 (dataset.samples)", "calibration 8 (compression_settings.static.calibration_samples)",
                  "= 16 images needed, 12 found", "add 4 images"):
        assert words in msg, f"{words!r} not in {msg!r}"


def test_a_separate_calibration_folder_too_small(tmp_path: Path) -> None:
    tiny_images(tmp_path / "val", 6)
    cal = tiny_images(tmp_path / "cal", 2)
    path = _matrix(tmp_path, STATIC + "dataset:\n  name: imagefolder\n  path: val\n  calibration: cal\n"
                   "compression_settings:\n  static: {calibration_samples: 16}\n")
    msg = _refusal(path)
    assert msg.startswith(f"{path}:8: dataset.calibration: {cal} "), msg
    for words in ("calibration 16", "compression_settings.static.calibration_samples", "4 found"):
        assert words in msg, f"{words!r} not in {msg!r}"


def test_pytest_matrix_refuses_it_before_any_case_runs(pytester: pytest.Pytester) -> None:
    val = tiny_images(pytester.path / "val", 6)
    path = pytester.path / "m.yaml"
    path.write_text(STATIC + "dataset: {name: imagefolder, path: val}\n", encoding="utf-8")
    results = pytester.path / "results.json"
    result = pytester.runpytest_subprocess("--matrix", str(path), "--results", str(results), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    err, out = result.stderr.str(), result.stdout.str()
    assert f"ERROR: {path}:5: dataset.path: {val} " in err, err
    assert "= 76 images needed, 12 found" in err and "dataset.samples" in err, err
    assert "compression_settings.static.calibration_samples" in err, err
    assert "Traceback" not in err + out and "no images left to take" not in err + out
    assert "passed" not in out and "failed" not in out and "error" not in out.lower(), out
    assert not results.exists()


@pytest.mark.parametrize("text", [
    # evaluation 6 + calibration 6 = 12, exactly the folder
    STATIC + "dataset: {name: imagefolder, path: val, samples: 6}\ncompression_settings:\n"
             "  static: {calibration_samples: 6}\n",
    # nothing calibrates: the evaluation takes every image, as before
    "matrix:\n  arch: [resnet18]\n  dtype: [fp32, int8]\n  compression: [none, dynamic]\n"
    "dataset: {name: imagefolder, path: val}\n",
    # static is listed but every static combination is excluded
    "matrix:\n  arch: [resnet18]\n  dtype: [int8]\n  compression: [dynamic, static]\n"
    "  exclude: [{compression: static}]\ndataset: {name: imagefolder, path: val}\n",
    # calibration from a folder of its own, large enough
    STATIC + "dataset: {name: imagefolder, path: val, calibration: cal}\ncompression_settings:\n"
             "  static: {calibration_samples: 8}\n",
], ids=["exactly-enough", "nothing-calibrates", "static-excluded", "own-calibration-folder"])
def test_a_folder_large_enough_passes(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_images(tmp_path / "val", 6)
    tiny_images(tmp_path / "cal", 4)
    path = _matrix(tmp_path, text)
    assert cli.main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert expand(load_config(path))


def test_static_from_an_include_entry_counts(tmp_path: Path) -> None:
    tiny_images(tmp_path / "val", 6)
    path = _matrix(tmp_path, "matrix:\n  arch: [resnet18]\n  include:\n"
                   "    - {arch: resnet18, dtype: int8, compression: static}\n"
                   "dataset: {name: imagefolder, path: val, samples: 10}\n")
    assert "evaluation 10 (dataset.samples) + calibration 64" in _refusal(path)


def test_runtime_message_names_what_to_change(tmp_path: Path) -> None:
    """Reached only past validation (data.calibration_set called directly): still says what to change."""
    from resnetbench import data

    root = tiny_images(tmp_path / "val", 2)
    with pytest.raises(data.DatasetError) as info:
        data.calibration_set({"name": "imagefolder", "path": str(root)}, 32, samples=4)
    msg = str(info.value)
    assert "no images left to take once the evaluation images are set aside" in msg
    assert "dataset.samples" in msg and "dataset.calibration" in msg, msg
