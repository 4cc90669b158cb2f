"""Expand a matrix into cases, the GitHub Actions way, and attach tolerances.

Expansion follows ``strategy.matrix``: the cartesian product of the axes, minus every
combination that matches an ``exclude`` entry (all of the entry's keys equal), then
each ``include`` entry is merged into every combination it matches without
overwriting an axis value; an entry that matches none becomes a new combination (axes
it does not name take the defaults). Capability checks happen later, per case, so an
unsupported combination is a skipped case with a reason, never a silent drop.

One difference from GitHub Actions: every case has all five axes, so an axis the matrix
does not list holds its default (fp32, none, eager, 1) and an include entry naming another
value of it does not match; it adds a new combination. A matrix that lists no axis at all
(include entries only) expands to its include entries alone, as in GitHub Actions.

Accuracy tolerances, from weakest to strongest:

1. the built-in defaults: the compression method's when the case is compressed, else the
   dtype's (a pruned fp32 model cannot meet fp32's rel_l2 <= 1e-4, so the dtype's
   float-precision limits do not carry over to a compressed case);
2. the matrix file's ``tolerances.dtype.<dtype>`` block;
3. its ``tolerances.compression.<method>`` block;
4. the ``tolerances`` of the include entries that match the case, in file order.

What a user writes always beats a built-in default.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from resnetbench.architectures import BUILTIN_ARCHS
from resnetbench.config import (  # the axes and their expansion live with the schema they read
    AXES,
    Config,
    ConfigError,
    expand_combinations,
    torchvision_weights_problem,
)
from resnetbench.domain import DEFAULT_SIZE_TOLERANCE, Case  # re-exported: the vocabulary lives in the leaf
from resnetbench.formulas import DTYPE_BYTES
from resnetbench.registries import get_method
from resnetbench.settings import CALIBRATION_SAMPLES, SYNTHETIC_SAMPLES

# Accuracy tolerances by dtype and by compression method (the metrics and why they are
# centred: measure/accuracy.py). "Measured" figures: random seeded weights, 32 synthetic
# inputs, 112x112 and 224x224, eager / ONNX Runtime / OpenVINO, this project's machines;
# an input-ignoring runner (first image's logits for every input) scores centred cosine
# -0.03 to 0.003 and spread_error 27.6 (ln 1e12: no variation) on every one of them.
# - fp32: rel_l2 1e-4, centred 1e-3. The element-wise rtol torch.onnx's own verification
#   uses is 1e-3 (atol 1e-7; torch/onnx/_internal/torchscript_exporter/verification.py:94-95,
#   torch 2.14.1); the norm-wise 1e-4 is stricter and still 140x above what every fp32
#   backend measured (rel_l2 <= 7e-7 against a float64 golden run).
# - fp16: measured centred cosine >= 0.9986 (ResNet-18/34/50, ONNX Runtime, 224); 0.99.
# - bf16: measured centred cosine 0.909-0.996 for ResNet-18/34/50 (0.918 ResNet-50 eager,
#   0.909 OpenVINO, 224): 0.85. Deeper random networks lose more of their small
#   input-dependent part to bf16 rounding (ResNet-101 0.71-0.77, ResNet-152 0.58-0.65 at
#   224): a matrix that checks them says so with its own tolerance (see matrix.yaml).
# - top1_agreement 0.99 counts only inputs that are not near-ties for the dtype and fails
#   only when its 95% upper bound is below 0.99 (measure/accuracy.py).
# - int8: MLPerf Inference's closed-division rule on labelled data: >= 99% of fp32 accuracy
#   (ResNet-50: 99% of 76.46%), i.e. a drop of about 1 point or less. Without labels the
#   output level decides: static int8 on random weights measured centred cosine 0.51
#   (ResNet-50, 224) to 0.96 (ResNet-18, 112) and spread_error up to 0.27 at 224, 0.42 for
#   ResNet-34 on eager (fbgemm) at 112: 0.4 and 0.5. Output noise twice the size of the
#   input-dependent part (spread_error 0.80) fails.
# - pruning has no published standard and, on random weights, leaves no input dependence
#   to compare (measured centred cosine 0.07 unstructured 50%, 0.001 channels 30%): it is
#   judged on labelled data only (task drop), and is undecidable without labels.
DEFAULT_TOLERANCES: dict[str, dict[str, dict[str, float]]] = {
    "dtype": {
        "fp32": {"rel_l2": 1e-4, "centered_rel_l2": 1e-3, "top1_agreement": 0.99},
        "fp16": {"centered_cosine": 0.99, "spread_error": 0.1, "top1_agreement": 0.99},
        "bf16": {"centered_cosine": 0.85, "spread_error": 0.2, "top1_agreement": 0.99},
        "int8": {"centered_cosine": 0.4, "spread_error": 0.5, "top1_drop_points": 1.0, "top1_ratio": 0.99},
    },
}
# A compression method's own defaults are declared with it (``Method.tolerances``, compress/).


def default_tolerances(dtype: str, compression: str) -> dict[str, float]:
    """Built-in tolerances: the compression method's for a compressed case, else the dtype's."""
    method_defaults = get_method(compression).tolerances
    if method_defaults:
        return dict(method_defaults)
    return dict(DEFAULT_TOLERANCES["dtype"].get(dtype, {}))


def tolerances_for(config: Config, dtype: str, compression: str) -> dict[str, float]:
    """Built-in defaults, then the matrix's dtype block, then its compression block.

    The user's blocks come after every built-in default, so a limit written in the matrix
    file is never replaced by one the user did not write.
    """
    user = config.tolerances
    tol = default_tolerances(dtype, compression)
    tol.update(user.get("dtype", {}).get(dtype, {}))
    tol.update(user.get("compression", {}).get(compression, {}))
    return tol


def machine_memory_bytes() -> int | None:
    """The memory a process here can have: physical memory, or a cgroup's limit when lower."""
    total: int | None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = None
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
    return total


# scikit-learn's digits split 80/20 (data.digits): the whole split is made at input_size.
DIGITS_IMAGES = {"test": 359, "train": 1438}


def memory_estimate(case: Case, config: Config) -> tuple[int, str]:
    """A lower bound on the memory ``case`` needs, in bytes, and what the bound is made of.

    The largest of: one timed call's input tensor (batch x 3 x size^2, fp32) with, for the
    built-in ResNets, the stem convolution's output beside it (64 channels at half the size,
    at the case's dtype: both are alive while the first layer runs, on every backend); the
    evaluation set; the calibration set of a calibrating method; the digits training split.
    Everything else a case holds (weights, other activations, the references) comes on top.
    """
    size = config.input_size
    image = 3 * size * size * 4
    gb = 1e9
    parts = [f"input tensor {case.batch * image / gb:.1f} GB"]
    one_call = case.batch * image
    if case.arch in BUILTIN_ARCHS:
        half = (size + 1) // 2
        conv = case.batch * 64 * half * half * DTYPE_BYTES.get(case.dtype, 4)
        parts.append(f"first conv output {conv / gb:.1f} GB")
        one_call += conv
    phases = {f"one call at batch {case.batch}, input_size {size}: {' + '.join(parts)}": one_call}
    dataset = config.dataset
    evaluation = {"synthetic": dataset.samples or SYNTHETIC_SAMPLES, "digits": DIGITS_IMAGES["test"]}.get(
        dataset.name, dataset.samples)
    if evaluation:
        phases[f"the evaluation set, {evaluation} images at input_size {size}"] = int(evaluation) * image
    method = get_method(case.compression)
    if method.calibrates:
        samples = int(method.settings_for(case.settings).get("calibration_samples", CALIBRATION_SAMPLES))
        if dataset.name == "digits":
            samples = DIGITS_IMAGES["train"]
        phases[f"the calibration set, {samples} images at input_size {size}"] = samples * image
    if config.weights.get("source") == "train":
        phases[f"the digits training split, {DIGITS_IMAGES['train']} images at input_size {size}"] = (
            DIGITS_IMAGES["train"] * image)
    what = max(phases, key=lambda k: phases[k])
    return phases[what], what


# A run of more cases than this is a typo (a batch axis of hundreds of values), not a
# benchmark: the default matrix has 38 and each case takes seconds to minutes.
MAX_CASES = 4096


def _combinations(matrix: dict[str, Any]) -> tuple[int, str]:
    """How many combinations the axes and include entries make (before exclude), and how."""
    listed = {axis: len(matrix[axis]) for axis in AXES if isinstance(matrix.get(axis), list)}
    product = math.prod(listed.values()) if listed else 0
    include = len(matrix.get("include") or [])
    how = " x ".join(f"{n} {axis}" for axis, n in listed.items()) or "no axes"
    return product + include, f"{how}{f' + {include} include entries' if include else ''}"


def expand(config: Config) -> list[Case]:
    """All cases of a matrix, ordered as written, ids unique.

    ConfigError when there are none, when there are absurdly many (``MAX_CASES``), or when a
    case cannot fit in this machine's memory (``memory_estimate``, a lower bound).
    """
    count, how = _combinations(config.matrix)
    if count > MAX_CASES:
        raise ConfigError(f"{config.path}: the matrix makes {count:,} combinations ({how}); a run takes at most "
                          f"{MAX_CASES:,} cases. Remove axis values or split the matrix.")
    cases: dict[str, Case] = {}
    size_tol = {**DEFAULT_SIZE_TOLERANCE, **config.tolerances.get("size", {})}
    for combo in expand_combinations(config.matrix):
        tol = tolerances_for(config, combo["dtype"], combo["compression"])
        tol.update(combo.get("tolerances", {}))
        case = Case(
            arch=combo["arch"],
            dtype=combo["dtype"],
            compression=combo["compression"],
            backend=combo["backend"],
            batch=int(combo["batch"]),
            tolerances=tol,
            size_tolerance=dict(size_tol),
            # the backend's settings, under its own key or (as before) under the method's
            settings={**config.compression_settings.get(combo["compression"], {}),
                      **config.backend_settings.get(combo["backend"], {})},
        )
        cases.setdefault(case.id, case)
    if not cases:
        # a run of nothing would pass: an exclude that removes everything is a mistake to report
        raise ConfigError(f"{config.path}: the matrix expands to no cases (every combination is excluded)")
    if config.weights.get("source") == "torchvision":
        for arch in dict.fromkeys(case.arch for case in cases.values()):
            problem = torchvision_weights_problem(arch)
            if problem:
                raise ConfigError(f"{config.path}: weights: {problem}")
    memory = machine_memory_bytes()
    if memory:
        for case in cases.values():
            need, what = memory_estimate(case, config)
            if need > memory:
                raise ConfigError(
                    f"{config.path}: case {case.id} needs at least {need / 1e9:.1f} GB of memory ({what}) and "
                    f"this machine has {memory / 1e9:.1f} GB. Lower its batch or input_size.")
    return list(cases.values())
