"""Hostile and broken inputs, everywhere (issue 15): each one gets one clear line that names
the input and what is wrong, no traceback, the documented exit code, and leaves any output
that existed before untouched.

- matrix files: ``load_config`` raises ConfigError; ``resnetbench validate`` exits 2;
  ``pytest --matrix`` turns it into a usage error, exit 4;
- results and baseline files: ``results.load`` raises ResultsError; ``compare``, ``report``
  and ``merge`` exit 2;
- output paths (``report -o``/``--summary``, ``merge -o``): exit 2 before anything is written.

Most inputs are checked before anything runs, without torch: files the matrix names
(checkpoints, image folders, label files), per-method settings, ranges, and a memory
lower bound per case.
"""

from __future__ import annotations

import collections
import errno
import json
import math
import os
import pickle
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from resnetbench import cli, matrix
from resnetbench import results as results_io
from resnetbench.config import MAX_MATRIX_BYTES, ConfigError, load_config
from resnetbench.inputs.checkpoints import LEGACY_MAGIC, checkpoint_problem
from resnetbench.matrix import expand

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "data" / "results_example.json"
HEAD = "matrix:\n  arch: [resnet18]\n"

# --------------------------------------------------------------------------- files to point at


def state_dict_pickle() -> bytes:
    """An empty state_dict pickled as torch.save pickles one (protocol 2)."""
    return pickle.dumps(collections.OrderedDict(), protocol=2)


def torch_zip(path: Path, pkl: bytes, extra: dict[str, bytes] | None = None) -> Path:
    """A file laid out as torch.save writes one: a zip with ``<name>/data.pkl`` and the storages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", pkl)
        zf.writestr(f"{path.stem}/byteorder", b"little")
        for name, data in (extra or {}).items():
            zf.writestr(f"{path.stem}/{name}", data)
    return path


def safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]], data: bytes) -> Path:
    """A .safetensors file: 8-byte header length, the JSON header (tensors laid end to end, 4
    bytes per element), then ``data`` (short of what the header says: truncated)."""
    header, start = {}, 0
    for name, (dtype, shape) in tensors.items():
        end = start + 4 * int(math.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}
        start = end
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


class _Touch:
    """Unpickling this opens (creates) ``marker``: the stand-in for code in a checkpoint."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def image_folder(root: Path, classes: dict[str, list[str]]) -> Path:
    for name, files in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            (root / name / file).write_bytes(b"")
    return root


# --------------------------------------------------------------------------- matrix files


@dataclass(frozen=True)
class Bad:
    """A broken matrix: its text, files it needs beside it, the line the message names
    (None: the file as a whole) and words the message must contain."""

    id: str
    text: str
    line: int | None
    contains: tuple[str, ...]
    setup: Callable[[Path], Any] | None = None


def _protocol4(d: Path) -> None:
    (d / "p4.pt").parent.mkdir(exist_ok=True)
    torch_zip(d / "p4.pt", pickle.dumps(collections.OrderedDict(), protocol=4))


def _truncated_pt(d: Path) -> None:
    whole = torch_zip(d / "whole.pt", state_dict_pickle(), {"data/0": os.urandom(20_000)}).read_bytes()
    (d / "cut.pt").write_bytes(whole[: len(whole) // 2])


def _truncated_legacy(d: Path) -> None:
    """The pre-1.6 torch layout (magic number, protocol, system info, then the object), cut short."""
    head = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, {"little_endian": True}))
    (d / "old.pt").write_bytes(head + state_dict_pickle()[:-1])


def _torchscript(d: Path) -> None:
    torch_zip(d / "scripted.pt", state_dict_pickle(), {"code/__torch__/model.py": b"def forward(self): ..."})


BAD: list[Bad] = [
    # --- files the matrix names ------------------------------------------------------------
    Bad("weights-missing-checkpoint", HEAD + "weights: ckpt/r18.pt\n", 3,
        ("weights:", "'ckpt/r18.pt'", "no file at", "ckpt/r18.pt")),
    Bad("weights-typo-torchvison", HEAD + "weights: torchvison\n", 3,
        ("'torchvison'", "neither random nor torchvision", "Did you mean 'torchvision'?")),
    Bad("weights-typo-random", HEAD + "weights: randon\n", 3, ("'randon'", "Did you mean 'random'?")),
    Bad("weights-path-source-missing", HEAD + "weights:\n  source: path\n  path: nope.safetensors\n", 5,
        ("weights:", "no checkpoint file at", "nope.safetensors")),
    Bad("weights-checkpoint-is-directory", HEAD + "weights: ckpts\n", 3, ("is a directory, not a checkpoint",),
        lambda d: (d / "ckpts").mkdir()),
    Bad("checkpoint-is-a-device", HEAD + "weights: /dev/null\n", 3, ("/dev/null", "is not a regular file")),
    Bad("checkpoint-empty", HEAD + "weights: empty.pt\n", 3, ("empty.pt", "is empty"),
        lambda d: (d / "empty.pt").write_bytes(b"")),
    Bad("checkpoint-garbage", HEAD + "weights: junk.pt\n", 3,
        ("junk.pt", "neither a torch checkpoint", "torch.load cannot read it"),
        lambda d: (d / "junk.pt").write_bytes(b"<html>404 not found</html>")),
    Bad("checkpoint-truncated-pt", HEAD + "weights: cut.pt\n", 3, ("cut.pt", "truncated"), _truncated_pt),
    Bad("checkpoint-truncated-legacy-pickle", HEAD + "weights: old.pt\n", 3, ("old.pt", "truncated"),
        _truncated_legacy),
    Bad("checkpoint-plain-pickle", HEAD + "weights: plain.pkl\n", 3, ("plain.pkl", "no torch magic number"),
        lambda d: (d / "plain.pkl").write_bytes(state_dict_pickle())),
    Bad("checkpoint-whole-model-pickled", HEAD + "weights: model.pt\n", 3,
        ("model.pt", "carries pickled code", "'torchvision.models.resnet.ResNet'", "state_dict"),
        lambda d: torch_zip(d / "model.pt", b"\x80\x02ctorchvision.models.resnet\nResNet\nq\x00)\x81q\x01.")),
    Bad("checkpoint-pickle-protocol-4", HEAD + "weights: p4.pt\n", 3,
        ("p4.pt", "pickle opcode", "weights_only=True"), _protocol4),
    Bad("checkpoint-torchscript-archive", HEAD + "weights: scripted.pt\n", 3,
        ("scripted.pt", "TorchScript archive", "state_dict"), _torchscript),
    Bad("checkpoint-zip-without-pickle", HEAD + "weights: notes.pt\n", 3, ("notes.pt", "without data.pkl"),
        lambda d: zipfile.ZipFile(d / "notes.pt", "w").close()),
    Bad("safetensors-truncated", HEAD + "weights: cut.safetensors\n", 3,
        ("cut.safetensors", "truncated", "need 4,000 bytes", "holds 1,000"),
        lambda d: safetensors(d / "cut.safetensors", {"fc.weight": ("F32", [10, 100])}, bytes(1000))),
    Bad("safetensors-span-mismatch", HEAD + "weights: odd.safetensors\n", 3,
        ("odd.safetensors", "'fc.bias' spans 4 bytes, its shape and dtype need 40"),
        lambda d: (d / "odd.safetensors").write_bytes(
            struct.pack("<Q", 61) + b'{"fc.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,4]}}' + bytes(4))),
    Bad("safetensors-header-not-json", HEAD + "weights: bad.safetensors\n", 3,
        ("bad.safetensors", "header is not JSON"),
        lambda d: (d / "bad.safetensors").write_bytes(struct.pack("<Q", 9) + b"{not json")),
    Bad("safetensors-header-past-end", HEAD + "weights: short.safetensors\n", 3,
        ("short.safetensors", "header claims"),
        lambda d: (d / "short.safetensors").write_bytes(struct.pack("<Q", 10**9) + b"{}")),
    Bad("safetensors-unknown-dtype", HEAD + "weights: odd.safetensors\n", 3,
        ("odd.safetensors", "'fc.weight'", "no valid dtype"),
        lambda d: safetensors(d / "odd.safetensors", {"fc.weight": ("F128", [2])}, bytes(32))),
    Bad("imagefolder-missing", HEAD + "dataset: {name: imagefolder, path: imgs}\n", 3,
        ("dataset.path", "no such directory", "imgs")),
    Bad("imagefolder-is-a-file", HEAD + "dataset: {name: imagefolder, path: imgs.tar}\n", 3,
        ("dataset.path", "is a file, not a directory"), lambda d: (d / "imgs.tar").write_bytes(b"x")),
    Bad("imagefolder-no-class-folders", HEAD + "dataset: {name: imagefolder, path: flat}\n", 3,
        ("dataset.path", "no class folders"), lambda d: image_folder(d / "flat", {}).mkdir(exist_ok=True)),
    Bad("imagefolder-class-without-images", HEAD + "dataset: {name: imagefolder, path: imgs}\n", 3,
        ("dataset.path", "class folder(s) dog hold no image"),
        lambda d: image_folder(d / "imgs", {"cat": ["1.JPG"], "dog": ["notes.txt"]})),
    Bad("imagefolder-calibration-missing",
        HEAD + "dataset:\n  name: imagefolder\n  path: imgs\n  calibration: cal\n", 6,
        ("dataset.calibration", "no such directory"), lambda d: image_folder(d / "imgs", {"cat": ["1.png"]})),
    Bad("imagefolder-labels-missing",
        HEAD + "dataset: {name: imagefolder, path: imgs, labels: labels.json}\n", 3,
        ("dataset.labels", "no such file", "labels.json"), lambda d: image_folder(d / "imgs", {"cat": ["1.png"]})),
    Bad("imagefolder-labels-not-json",
        HEAD + "dataset: {name: imagefolder, path: imgs, labels: labels.json}\n", 3,
        ("dataset.labels", "is not JSON"),
        lambda d: (image_folder(d / "imgs", {"cat": ["1.png"]}), (d / "labels.json").write_text("cat = 3"))),
    Bad("imagefolder-labels-lack-a-class",
        HEAD + "dataset: {name: imagefolder, path: imgs, labels: labels.json}\n", 3,
        ("dataset.labels", "no label for class folder(s) dog"),
        lambda d: (image_folder(d / "imgs", {"cat": ["1.png"], "dog": ["2.png"]}),
                   (d / "labels.json").write_text('{"cat": 281}'))),
    Bad("imagefolder-label-out-of-range",
        HEAD + "dataset: {name: imagefolder, path: imgs, labels: labels.json}\n", 3,
        ("dataset.labels", "'cat' has label 1000", "from 0 to 999"),
        lambda d: (image_folder(d / "imgs", {"cat": ["1.png"]}), (d / "labels.json").write_text('{"cat": 1000}'))),
    Bad("cache-dir-not-a-directory", HEAD + "cache: {dir: /dev/null}\n", 3, ("cache.dir", "/dev/null is not a directory")),
    # --- per-method settings (Method.settings_schema) --------------------------------------
    Bad("calibration-samples-negative", HEAD + "compression_settings:\n  static: {calibration_samples: -5}\n", 4,
        ("compression_settings.static.calibration_samples", "-5", ">= 1")),
    Bad("prune-amount-7", HEAD + "compression_settings:\n  prune-l1-unstructured: {amount: 7}\n", 4,
        ("compression_settings.prune-l1-unstructured.amount", "7", "< 1")),
    Bad("prune-channels-amount-1", HEAD + "compression_settings:\n  prune-channels: {amount: 1.0}\n", 4,
        ("compression_settings.prune-channels.amount", "1.0", "< 1")),
    Bad("prune-scope-unknown", HEAD + "compression_settings:\n  prune-l1-unstructured: {scope: globl}\n", 4,
        ("'globl'", "global, layer", "Did you mean 'global'?")),
    Bad("settings-unknown-key", HEAD + "compression_settings:\n  prune-channels: {amout: 0.3}\n", 4,
        ("unknown key 'amout'", "compression_settings.prune-channels", "Did you mean 'amount'?")),
    Bad("settings-for-a-method-without-settings", HEAD + "compression_settings:\n  none: {amount: 0.5}\n", 4,
        ("unknown key 'amount'", "compression_settings.none")),
    Bad("distill-teacher-unknown", HEAD + "compression_settings:\n  distill: {teacher: resnet51}\n", 4,
        ("compression_settings.distill.teacher", "'resnet51'", "Did you mean 'resnet50'?")),
    Bad("distill-alpha-out-of-range", HEAD + "compression_settings:\n  distill: {alpha: 2}\n", 4,
        ("compression_settings.distill.alpha", "<= 1")),
    Bad("settings-not-a-mapping", HEAD + "compression_settings:\n  static: 64\n", 4,
        ("compression_settings.static", "expected a mapping", "64")),
    # --- ranges and types ------------------------------------------------------------------
    Bad("seed-1e29", HEAD + "seed: 100000000000000000000000000000\n", 3, ("seed", "too large", "<= 4294967295")),
    Bad("seed-1e29-float-spelling", HEAD + "seed: 1e29\n", 3, ("seed", "expected an integer", "'1e29'")),
    Bad("seed-negative", HEAD + "seed: -1\n", 3, ("seed", "-1", ">= 0")),
    Bad("input-size-zero", HEAD + "input_size: 0\n", 3, ("input_size", "0 is too small", ">= 16")),
    Bad("input-size-negative", HEAD + "input_size: -224\n", 3, ("input_size", "-224", ">= 16")),
    Bad("input-size-string", HEAD + 'input_size: "224"\n', 3, ("input_size", "expected an integer", "'224'")),
    Bad("input-size-boolean", HEAD + "input_size: yes\n", 3, ("input_size", "expected an integer", "a boolean")),
    Bad("batch-boolean", "matrix:\n  arch: [resnet18]\n  batch: [true]\n", 3,
        ("matrix.batch[0]", "expected an integer", "True")),
    Bad("axis-null", "matrix:\n  arch: null\n", 2, ("matrix.arch", "expected a list", "nothing")),
    Bad("matrix-null", "matrix:\nseed: 1\n", 1, ("matrix", "expected a mapping", "nothing")),
    Bad("matrix-is-a-list", "matrix: [resnet18]\n", 1, ("matrix", "expected a mapping", "a list")),
    Bad("threads-zero", HEAD + "threads: 0\n", 3, ("threads", ">= 1")),
    Bad("latency-rounds-absurd", HEAD + "latency: {rounds: 1000000000}\n", 3, ("latency.rounds", "<= 100000")),
    Bad("tolerance-nan", HEAD + "tolerances:\n  dtype:\n    fp32: {rel_l2: .nan}\n", 5,
        ("tolerances.dtype.fp32.rel_l2", ".nan is not a finite number")),
    Bad("gate-threshold-inf", HEAD + "gate: {threshold: .inf}\n", 3, ("gate.threshold", ".inf is not a finite")),
    Bad("gate-threshold-50", HEAD + "gate: {threshold: 50}\n", 3, ("gate.threshold", "50 is too large", "< 10")),
    Bad("tolerance-cosine-above-1", HEAD + "tolerances:\n  dtype:\n    fp16: {centered_cosine: 1.5}\n", 5,
        ("tolerances.dtype.fp16.centered_cosine", "1.5 is too large", "<= 1")),
    Bad("tolerance-drop-points-above-100", HEAD + "  include:\n    - {arch: resnet18, tolerances: {top1_drop_points: 150}}\n",
        4, ("top1_drop_points", "150 is too large", "<= 100")),
    Bad("unknown-backend-did-you-mean", "matrix:\n  arch: [resnet18]\n  backend: [onnxruntim]\n", 3,
        ("matrix.backend[0]", "'onnxruntim'", "Did you mean 'onnxruntime'?")),
    Bad("unknown-compression-did-you-mean", "matrix:\n  arch: [resnet18]\n  compression: [statc]\n", 3,
        ("matrix.compression[0]", "'statc'", "Did you mean 'static'?")),
    Bad("unknown-dtype-fp8", "matrix:\n  arch: [resnet18]\n  dtype: [fp8]\n", 3,
        ("matrix.dtype[0]", "'fp8'", "fp32, fp16, bf16, int8")),
    Bad("unknown-arch-did-you-mean", "matrix:\n  arch: [ResNet50]\n", 2,
        ("matrix.arch[0]", "'ResNet50'", "Did you mean 'resnet50'?")),
    # --- YAML itself -----------------------------------------------------------------------
    Bad("yaml-python-object-tag", "matrix: !!python/object/apply:os.system ['touch pwned']\n", 1,
        ("unknown YAML tag '!!python/object/apply:os.system'", "remove the tag")),
    Bad("yaml-custom-tag", "matrix:\n  arch: !resnets [resnet18]\n", 2, ("unknown YAML tag '!resnets'",)),
    Bad("yaml-mapping-values-not-allowed", "matrix:\n  arch: resnet18: resnet50\n", 2,
        ("malformed YAML", "mapping values are not allowed")),
    Bad("yaml-unhashable-key", "matrix:\n  ? [arch, dtype]\n  : [resnet18]\n", 2,
        ("a mapping key must be a plain value",)),
    Bad("yaml-two-documents", HEAD + "---\n" + HEAD, 3, ("malformed YAML", "single document")),
    Bad("yaml-undefined-alias", "matrix:\n  arch: *archs\n", 2, ("malformed YAML", "undefined alias")),
    Bad("yaml-nul-character", HEAD + "seed: 1\x00\n", 3, ("malformed YAML", "0x0000", "not allowed")),
    Bad("yaml-recursive-alias", "matrix: &m\n  arch: [resnet18]\n  include: [*m]\n", 1,
        ("alias refers to a mapping or list that contains it", "cannot be recursive")),
    Bad("yaml-nested-too-deep", "matrix: " + "[" * 1000 + "]" * 1000 + "\n", None, ("nested too deeply",)),
    Bad("yaml-nested-40-levels", "matrix: " + "[" * 40 + "]" * 40 + "\n", 1, ("nested more than 32 levels deep",)),
    Bad("yaml-list-too-long", "matrix:\n  arch: [resnet18]\n  include: [" + "{arch: resnet18}, " * 1200 + "]\n", 3,
        ("a list of 1,200 items", "at most 1,000")),
    # --- extensions by import path -----------------------------------------------------------
    Bad("extension-shadows-builtin", HEAD + "backends:\n  eager: os:path\n", 4,
        ("backends.eager", "built-in backend", "another name")),
    Bad("extension-wrong-kind", HEAD + "compressions:\n  mine: os:path\n", 4,
        ("compressions.mine", "'os:path' failed", "must be a resnetbench.compress.base.Method")),
    Bad("extension-relative-import", HEAD + "compressions:\n  mine: '..:x'\n", 4,
        ("compressions.mine", "'..:x'", "package.module:function")),
    # --- the expanded matrix -----------------------------------------------------------------
    Bad("too-many-cases",
        "matrix:\n  arch: [resnet18, resnet34, resnet50, resnet101, resnet152]\n  dtype: [fp32, fp16, bf16, int8]\n"
        f"  batch: [{', '.join(str(b) for b in range(1, 211))}]\n", None,
        ("4,200 combinations", "5 arch x 4 dtype x 210 batch", "at most 4,096")),
    Bad("evaluation-set-larger-than-memory", HEAD + "input_size: 1024\ndataset: {name: synthetic, samples: 1000000}\n",
        None, ("case resnet18-fp32-none-eager-b1 needs at least 12582.9 GB", "the evaluation set, 1000000 images")),
]


def _write(bad: Bad, tmp_path: Path) -> Path:
    if bad.setup is not None:
        bad.setup(tmp_path)
    path = tmp_path / "m.yaml"
    path.write_text(bad.text, encoding="utf-8")
    return path


def _check_message(msg: str, path: Path, line: int | None, contains: tuple[str, ...]) -> None:
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    for word in contains:
        assert word in msg, f"{word!r} not in {msg!r}"
    assert "\n" not in msg.strip() and "Traceback" not in msg and 'File "' not in msg, msg
    assert len(msg) < 700, f"a message, not a dump ({len(msg)} characters)"


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_matrix_is_one_config_error(bad: Bad, tmp_path: Path) -> None:
    path = _write(bad, tmp_path)
    with pytest.raises(ConfigError) as info:
        expand(load_config(path))
    _check_message(str(info.value), path, bad.line, bad.contains)
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__), "nothing chained"


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_validate_exits_2_with_one_line(bad: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(bad, tmp_path)
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("resnetbench: error: "), err
    _check_message(err.strip().removeprefix("resnetbench: error: "), path, bad.line, bad.contains)


# --------------------------------------------------------------------------- the matrix file itself


def test_matrix_path_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"resnetbench: error: {tmp_path}: is a directory, not a matrix file.\n"


def test_matrix_that_is_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(HEAD.encode() + "# caf\u00e9 in Latin-1\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"m\.yaml:3: not UTF-8 text \(byte 0xe9 at offset 32\); save"):
        load_config(path)


def test_huge_matrix_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "# " + "x" * MAX_MATRIX_BYTES + "\n", encoding="utf-8")
    parsed: list[str] = []
    monkeypatch.setattr("resnetbench.config._parse", lambda *a: parsed.append("parsed"))
    with pytest.raises(ConfigError, match=r"m\.yaml: 1,000,0\d\d bytes is too large for a matrix file \(at most "
                                          r"1,000,000\); refused before parsing it\."):
        load_config(path)
    assert parsed == []


def test_endless_device_as_matrix_is_refused_after_a_bounded_read(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    assert cli.main(["validate", "/dev/zero"]) == 2
    assert "/dev/zero: more than 1,000,000 bytes is too large for a matrix file" in capsys.readouterr().err


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    """7 levels of 10-way aliases: 10^7 values from 479 bytes (2.4 s in the duplicate-key
    check before the node count; x10 per level, so 8 levels are 24 s)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n" + HEAD, encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - start < 1.0
    _check_message(str(info.value), path, 5, ("more than 20,000 values", "aliases", "alias bomb"))


def test_aliases_within_reason_still_load(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: &archs [resnet18, resnet34]\n  include:\n    - {arch: resnet50}\n"
                    "tolerances:\n  dtype:\n    fp16: &loose {centered_cosine: 0.9}\n    bf16: *loose\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.tolerances["dtype"]["bf16"] == {"centered_cosine": 0.9}
    assert len(expand(cfg)) == 3


def test_torchvision_weights_not_on_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """resnetbench never downloads: without torchvision's file in torch hub's directory every
    case would error at run time; validate says so first (found without importing torch)."""
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: [resnet18, resnet50]\nweights: torchvision\n", encoding="utf-8")
    (hub / "resnet18-f37072fd.pth").write_bytes(b"")
    assert cli.main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"resnetbench: error: {path}: weights: torchvision's pretrained resnet50 weights are not on this machine "
        f"(no {hub}/resnet50-*.pth), and resnetbench does not download: fetch them where there is network "
        "(torchvision.models.resnet50(weights='DEFAULT') stores them there) and copy them here, set TORCH_HOME, "
        "or use weights: {source: path, path: FILE}.\n")
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"")
    assert cli.main(["validate", str(path)]) == 0


def test_image_search_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``path: /`` or a huge folder: the search for one image per class stops after a budget of
    directory entries and lets ImageFolder decide, instead of walking the disk."""
    image_folder(tmp_path / "imgs", {"cat": [f"{i}.txt" for i in range(50)], "dog": []})
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + "dataset: {name: imagefolder, path: imgs}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="class folder\\(s\\) cat, dog hold no image"):
        load_config(path)
    monkeypatch.setattr("resnetbench.inputs.imagefolders.IMAGE_SCAN_BUDGET", 10)
    assert load_config(path).dataset["name"] == "imagefolder"


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_with_pickled_code_is_refused_and_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Touch(str(marker)), protocol=2)
    # the payload is live: plain unpickling runs it
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()
    torch_zip(tmp_path / "evil.pt", payload)
    (tmp_path / "m.yaml").write_text(HEAD + "weights: evil.pt\n", encoding="utf-8")
    assert cli.main(["validate", str(tmp_path / "m.yaml")]) == 2
    err = capsys.readouterr().err
    assert "evil.pt carries pickled code: data.pkl calls" in err and "refused without unpickling it" in err, err
    assert not marker.exists()


def test_runtime_loader_refuses_what_validate_refuses(tmp_path: Path) -> None:
    """weights.load_checkpoint (the path a run takes) says the same, and never unpickles code."""
    from resnetbench.models import WeightsError
    from resnetbench.weights import load_checkpoint

    marker = tmp_path / "pwned"
    evil = torch_zip(tmp_path / "evil.pt", pickle.dumps(_Touch(str(marker)), protocol=2))
    with pytest.raises(WeightsError, match="evil.pt carries pickled code"):
        load_checkpoint(evil)
    assert not marker.exists()
    cut = tmp_path / "cut.safetensors"
    safetensors(cut, {"fc.weight": ("F32", [10, 100])}, bytes(1000))
    with pytest.raises(WeightsError, match="cut.safetensors is truncated"):
        load_checkpoint(cut)


def test_real_checkpoints_pass_the_check(tmp_path: Path) -> None:
    """What torch.save and safetensors write (fp32, bf16, quantized int8, a wrapped state_dict,
    the legacy pre-1.6 format) passes; a check that refused them would be worse than none."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    linear = torch.nn.Linear(3, 2)
    files = {
        "fp32.pt": linear.state_dict(),
        "bf16.pt": linear.to(torch.bfloat16).state_dict(),
        "wrapped.pt": {"state_dict": torch.nn.BatchNorm2d(2).state_dict(), "epoch": 3, "tag": b"x", "ids": {1, 2}},
        "int8.pt": {"w": torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8)},
    }
    for name, state in files.items():
        torch.save(state, tmp_path / name)
    torch.save(linear.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file(linear.to(torch.float32).state_dict(), str(tmp_path / "fp32.safetensors"))
    for path in sorted(tmp_path.iterdir()):
        assert checkpoint_problem(path) is None, path.name
        torch.load(path, weights_only=True) if path.suffix == ".pt" else None


# --------------------------------------------------------------------------- memory


def test_input_tensor_beyond_this_machine_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """batch 4096 at 1024x1024: the input tensor alone is 51.5 GB, with the stem's output 326 GB."""
    memory = matrix.machine_memory_bytes()
    if memory is None or memory > 326e9:
        pytest.skip(f"this machine has {memory} bytes: the case would fit")
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: [resnet18]\n  batch: [1, 4096]\ninput_size: 1024\n", encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (f"{path}: case resnet18-fp32-none-eager-b4096 needs at least 326.4 GB of memory (one call at batch "
            f"4096, input_size 1024: input tensor 51.5 GB + first conv output 274.9 GB)") in err, err
    assert f"this machine has {memory / 1e9:.1f} GB" in err


def test_memory_estimate_against_a_small_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet-50 fp16 at batch 256, 224x224: input 0.15 GB + stem output 0.41 GB."""
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: [resnet50]\n  dtype: [fp16]\n  batch: [8, 256]\n", encoding="utf-8")
    monkeypatch.setattr(matrix, "machine_memory_bytes", lambda: 5 * 10**8)
    with pytest.raises(ConfigError) as info:
        expand(load_config(path))
    assert str(info.value) == (
        f"{path}: case resnet50-fp16-none-eager-b256 needs at least 0.6 GB of memory (one call at batch 256, "
        "input_size 224: input tensor 0.2 GB + first conv output 0.4 GB) and this machine has 0.5 GB. "
        "Lower its batch or input_size.")
    monkeypatch.setattr(matrix, "machine_memory_bytes", lambda: 2 * 10**9)
    assert len(expand(load_config(path))) == 2


# --------------------------------------------------------------------------- results and baseline files


def _example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text())


def _with_latency(value: float) -> Callable[[Path], str]:
    """The example with one latency median replaced (json.dumps writes NaN and Infinity)."""

    def content(d: Path) -> str:
        data = _example()
        next(c for c in data["cases"] if c.get("latency"))["latency"]["median_ms"] = value
        return json.dumps(data, indent=1)

    return content


@dataclass(frozen=True)
class BadResults:
    id: str
    content: Callable[[Path], str | bytes]
    contains: tuple[str, ...]
    line: int | None = None


BAD_RESULTS: list[BadResults] = [
    BadResults("truncated-json", lambda d: EXAMPLE.read_text()[:4000], ("not valid JSON", "ends early: truncated?")),
    BadResults("empty-file", lambda d: "", ("not valid JSON", "truncated?")),
    BadResults("nan-in-a-measurement", _with_latency(float("nan")),
               ("NaN is not a number", "JSON has no NaN or Infinity")),
    BadResults("infinity", _with_latency(float("-inf")), ("-Infinity is not a number",)),
    BadResults("float-overflow-1e999", lambda d: '{"schema_version": 1, "cases": [], "x": 1e999}',
               ("1e999 is too large for a number",)),
    BadResults("huge-integer", lambda d: '{"schema_version": 1, "cases": [], "x": ' + "9" * 5000 + "}",
               ("not valid results JSON", "digits")),
    BadResults("deep-nesting", lambda d: "[" * 100_000 + "]" * 100_000, ("nested too deeply",)),
    BadResults("duplicate-key", lambda d: '{"schema_version": 1, "cases": [], "cases": [], "claims": []}',
               ("key \"cases\" appears twice",)),
    BadResults("not-ours-package-json", lambda d: '{"name": "left-pad", "version": "1.3.0"}',
               ("not a resnetbench results file",)),
    BadResults("json-list", lambda d: "[1, 2, 3]", ("not a resnetbench results file",)),
    BadResults("other-schema-version", lambda d: EXAMPLE.read_text().replace('"schema_version": 1', '"schema_version": 2'),
               ("schema_version 2 is not supported (expected 1)", "another version of resnetbench")),
    BadResults("schema-version-true", lambda d: EXAMPLE.read_text().replace('"schema_version": 1', '"schema_version": true'),
               ("schema_version", "true must be 1")),
    BadResults("binary-not-utf8", lambda d: b"\x89PNG\r\n\x1a\n\x00\x00", ("not UTF-8 text (byte 0x89 at offset 0)",)),
    BadResults("fingerprint-not-an-object",
               lambda d: json.dumps({**_example(), "environment": {"fingerprint": "abc123"}}),
               ("environment.fingerprint", "\"abc123\" is a string, expected object or null")),
    BadResults("outcome-not-a-string",
               lambda d: json.dumps({**_example(), "cases": [{**_example()["cases"][0], "outcome": ["passed"]}]}),
               ("cases[0]", "has outcome ['passed']", "allowed: passed, failed, skipped, error")),
    BadResults("a-matrix-yaml-instead", lambda d: (REPO / "matrix.yaml").read_text(), ("not valid JSON",)),
]


def _write_results(bad: BadResults, tmp_path: Path) -> Path:
    content = bad.content(tmp_path)
    path = tmp_path / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("bad", BAD_RESULTS, ids=[b.id for b in BAD_RESULTS])
def test_bad_results_file_is_one_results_error(bad: BadResults, tmp_path: Path) -> None:
    path = _write_results(bad, tmp_path)
    with pytest.raises(results_io.ResultsError) as info:
        results_io.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}"), msg
    for word in bad.contains:
        assert word in msg, f"{word!r} not in {msg!r}"
    assert "\n" not in msg and len(msg) < 600, msg
    assert info.value.__cause__ is None and info.value.__suppress_context__ in (True, False)


@pytest.mark.parametrize("bad", BAD_RESULTS, ids=[b.id for b in BAD_RESULTS])
def test_compare_exits_2_on_a_bad_baseline(bad: BadResults, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_results(bad, tmp_path)
    assert cli.main(["compare", str(path), str(EXAMPLE)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"resnetbench compare: error: {path}"), err


def test_results_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(results_io.ResultsError, match=r": is a directory, not a results file$"):
        results_io.load(tmp_path)


def test_huge_results_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results_io, "MAX_RESULTS_BYTES", 1000)
    path = tmp_path / "r.json"
    path.write_text(EXAMPLE.read_text())
    monkeypatch.setattr(results_io, "loads", lambda *a: pytest.fail("parsed"))
    with pytest.raises(results_io.ResultsError, match=r"bytes is too large for a results file \(at most 1,000\)"):
        results_io.load(path)


def test_compare_thresholds_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("nan", "inf", "0", "-0.1", "12"):
        assert cli.main(["compare", str(EXAMPLE), str(EXAMPLE), "--threshold", bad]) == 2, bad
        out, err = capsys.readouterr()
        assert "--threshold must be a positive fraction" in err and out == "", (bad, err)


# --------------------------------------------------------------------------- outputs


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """An output file from an earlier run: a failed command must leave it as it was."""
    out = tmp_path / "out" / "earlier.html"
    out.parent.mkdir()
    out.write_text("EARLIER OUTPUT")
    return out


def _bad_results(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.json"
    path.write_text(EXAMPLE.read_text()[:500])
    return path


def test_report_on_bad_input_keeps_the_existing_report(tmp_path: Path, existing: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    summary = existing.with_name("summary.md")
    summary.write_text("EARLIER SUMMARY")
    bad = _bad_results(tmp_path)
    assert cli.main(["report", str(bad), "-o", str(existing), "--summary", str(summary)]) == 2
    assert "ends early: truncated?" in capsys.readouterr().err
    assert existing.read_text() == "EARLIER OUTPUT" and summary.read_text() == "EARLIER SUMMARY"
    assert cli.main(["report", str(EXAMPLE), "-o", str(existing), "--baseline", str(bad)]) == 2
    assert existing.read_text() == "EARLIER OUTPUT"
    assert sorted(p.name for p in existing.parent.iterdir()) == ["earlier.html", "summary.md"], "no temporary left"


def test_merge_on_bad_input_keeps_the_existing_output(tmp_path: Path, existing: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["merge", str(EXAMPLE), str(_bad_results(tmp_path)), "-o", str(existing)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert existing.read_text() == "EARLIER OUTPUT"


@pytest.mark.parametrize("command", ["report", "merge"])
def test_output_path_that_is_a_directory(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, str(EXAMPLE), "-o", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"resnetbench: error: -o {tmp_path}: is a directory; give a file path, e.g. {tmp_path / 'out'}\n"
    assert list(tmp_path.iterdir()) == []


def test_summary_path_that_is_a_directory_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert cli.main(["report", str(EXAMPLE), "-o", str(out), "--summary", str(tmp_path)]) == 2
    assert f"--summary {tmp_path}: is a directory" in capsys.readouterr().err
    assert not out.exists(), "refused before the report was written"


def test_output_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reports").write_text("a file where a directory should be")
    assert cli.main(["merge", str(EXAMPLE), "-o", str(tmp_path / "reports" / "m.json")]) == 2
    assert f"{tmp_path / 'reports'} is a file, not a directory" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest.mark.parametrize("command", ["report", "merge"])
def test_output_in_a_read_only_directory(command: str, existing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing.parent.chmod(0o555)
    try:
        assert cli.main([command, str(EXAMPLE), "-o", str(existing)]) == 2
        assert f"the directory {existing.parent} is not writable" in capsys.readouterr().err
        assert existing.read_text() == "EARLIER OUTPUT"
    finally:
        existing.parent.chmod(0o755)


@pytest.mark.parametrize("command", ["report", "merge"])
def test_write_that_fails_anyway_is_one_line_and_keeps_the_old_file(
        command: str, existing: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What the up-front check cannot see (a read-only file system; root ignores modes): the
    atomic write fails at its temporary file, reported in one line, the old file kept."""

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert cli.main([command, str(EXAMPLE), "-o", str(existing)]) == 2
    out, err = capsys.readouterr()
    assert err == f"resnetbench: error: -o {existing}: cannot write: Read-only file system\n", err
    assert existing.read_text() == "EARLIER OUTPUT"


# --------------------------------------------------------------------------- pytest --matrix


PYTEST_BAD = {
    "weights-typo": (HEAD + "weights: torchvison\n", None, ("Did you mean 'torchvision'?",)),
    "alias-bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n" + HEAD, None, ("alias bomb",)),
    "pickled-code": (HEAD + "weights: evil.pt\n", "evil.pt", ("carries pickled code",)),
    "setting-out-of-range": (HEAD + "compression_settings:\n  static: {calibration_samples: -5}\n", None, (">= 1",)),
}


@pytest.mark.parametrize("name", sorted(PYTEST_BAD))
def test_pytest_matrix_turns_bad_input_into_a_usage_error(name: str, pytester: pytest.Pytester) -> None:
    text, evil, words = PYTEST_BAD[name]
    marker = pytester.path / "pwned"
    if evil:
        torch_zip(pytester.path / evil, pickle.dumps(_Touch(str(marker)), protocol=2))
    path = pytester.path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    results = pytester.path / "results.json"
    result = pytester.runpytest_subprocess("--matrix", str(path), "--results", str(results), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    err = result.stderr.str()
    assert f"ERROR: {path}:" in err and all(w in err for w in words), err
    assert "Traceback" not in err + result.stdout.str()
    assert not results.exists() and not marker.exists()


@pytest.mark.parametrize("option", ["--baseline", "--durations-path"])
def test_pytest_matrix_with_a_bad_results_file(option: str, pytester: pytest.Pytester) -> None:
    """A baseline (or durations file) with NaN in it stops the run before it starts, exit 4."""
    bad = pytester.path / "base.json"
    bad.write_text(_with_latency(float("nan"))(pytester.path))
    path = pytester.path / "m.yaml"
    path.write_text(HEAD, encoding="utf-8")
    shard = ["--shard", "1/2"] if option == "--durations-path" else []
    result = pytester.runpytest_subprocess("--matrix", str(path), option, str(bad), *shard, "-p", "no:cacheprovider")
    assert result.ret == 4
    err = result.stderr.str()
    assert f"ERROR: {option}: {bad}:" in err and "NaN is not a number" in err and "Traceback" not in err, err


def test_pytest_matrix_that_is_a_directory(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--matrix", str(pytester.path), "-p", "no:cacheprovider")
    assert result.ret == 4 and f"ERROR: {pytester.path}: is a directory, not a matrix file." in result.stderr.str()


# --------------------------------------------------------------------------- the count


def test_at_least_forty_distinct_bad_inputs() -> None:
    """Issue 15 asks for at least 40: the tables above, plus the inputs with a test of their own."""
    own = {"matrix-dir", "matrix-not-utf8", "matrix-huge", "matrix-dev-zero", "alias-bomb", "pickled-code",
           "torchvision-weights-absent", "image-search-bounded", "memory-51gb-input", "memory-small-machine",
           "results-dir", "results-huge", "compare-thresholds-nan-inf-0-negative-12", "output-dir", "summary-dir",
           "output-below-file", "output-read-only", "output-erofs", "baseline-nan", "durations-path-nan"}
    ids = [b.id for b in BAD] + [f"results-{b.id}" for b in BAD_RESULTS] + sorted(own)
    assert len(ids) == len(set(ids)) >= 40
