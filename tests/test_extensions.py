"""Third-party extensions: a backend, a compression method and an architecture added from
outside the package (``tests/extpkg``), once through entry points of an installed
package and once through matrix import paths; pytest and ``validate`` accept both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXTPKG = Path(__file__).parent / "extpkg"
AXES = """
matrix:
  arch: [resnet10]
  dtype: [fp32, bf16]
  compression: [fold-bn]
  backend: [eager-nograd]
input_size: 64
dataset: {name: synthetic, samples: 16}
latency: {warmup: 1, rounds: 5, pairs: 8, blocks: 4, retimes: 0}
claims: false
"""
IMPORT_PATHS = """
architectures: {resnet10: "rbext.arch:resnet10"}
backends: {eager-nograd: "rbext.backend:NoGradEagerBackend"}
compressions: {fold-bn: "rbext.fold_bn:METHOD"}
"""
IDS = {"resnet10-fp32-fold-bn-eager-nograd-b1", "resnet10-bf16-fold-bn-eager-nograd-b1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed (pip, no network) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(EXTPKG)], check=True, timeout=300)
    assert list(target.glob("rbext-*.dist-info/entry_points.txt")), "pip wrote no entry points"
    return target


def _run(tmp_path: Path, pythonpath: Path, matrix: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "m.yaml"
    path.write_text(matrix)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, *args, str(path)] if args[-1] == "validate" else
                          [sys.executable, *args, "--matrix", str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)


def _check_run(tmp_path: Path, pythonpath: Path, matrix: str, cache: Path) -> None:
    results = tmp_path / "results.json"
    done = _run(tmp_path, pythonpath, matrix, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                "--results", str(results), "--cache-dir", str(cache))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    cases = {c["id"]: c for c in json.loads(results.read_text())["cases"]}
    assert set(cases) == IDS
    for case in cases.values():
        assert case["outcome"] == "passed", case
        assert case["tests"] == {"size": "passed", "accuracy": "passed", "latency": "passed"}
        info = case["compression_info"]
        assert info["batchnorms_left"] == 0 and info["params_after"] < info["params_before"]
        assert case["artifact"]["runtime"]["grad_mode"] == "no_grad"
    # The subclass got a bf16 model from the eager backend type (no dtype error): its
    # outputs follow the fp32 reference at bf16's tolerance, not fp32's.
    assert cases["resnet10-bf16-fold-bn-eager-nograd-b1"]["accuracy"]["verdict"] == "passed"
    assert cases["resnet10-fp32-fold-bn-eager-nograd-b1"]["accuracy"]["metrics"]["rel_l2"] < 1e-4


@pytest.mark.slow
def test_entry_point_extensions_run_together(installed: Path, tmp_path: Path) -> None:
    _check_run(tmp_path, installed, AXES, tmp_path / "cache")


@pytest.mark.slow
def test_import_path_extensions_run_together(tmp_path: Path) -> None:
    # The package's source folder, not installed: no entry points, only the matrix's paths.
    _check_run(tmp_path, EXTPKG, AXES + IMPORT_PATHS, tmp_path / "cache")


@pytest.mark.parametrize("how", ["entry points", "import paths"])
def test_validate_accepts_both(how: str, installed: Path, tmp_path: Path) -> None:
    pythonpath, matrix = (installed, AXES) if how == "entry points" else (EXTPKG, AXES + IMPORT_PATHS)
    done = _run(tmp_path, pythonpath, matrix, "-m", "resnetbench.cli", "validate")
    assert done.returncode == 0, done.stderr
    assert "valid, 2 cases" in done.stdout


def test_validate_rejects_them_when_not_installed(tmp_path: Path) -> None:
    done = _run(tmp_path, tmp_path, AXES, "-m", "resnetbench.cli", "validate")
    assert done.returncode == 2
    # one of the three unknown names, and a count of the other two
    assert "Allowed values" in done.stderr and "(2 more problem(s) after this one.)" in done.stderr, done.stderr
