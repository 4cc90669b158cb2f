"""Matrix file loading: every malformed input gives one actionable ConfigError paragraph."""

from __future__ import annotations

import collections
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from resnetbench import cli
from resnetbench.config import ConfigError, json_schema, load_config
from resnetbench.matrix import expand
from resnetbench.settings import CacheSettings, DatasetSettings, GateSettings, LatencySettings

REPO = Path(__file__).resolve().parent.parent
ARCH_LIST = "resnet18, resnet34, resnet50, resnet101, resnet152"
DTYPE_LIST = "fp32, fp16, bf16, int8"
MINIMAL = "matrix:\n  arch: [resnet18]\n  backend: [eager]\n"


@dataclass(frozen=True)
class Bad:
    """A malformed matrix: its text (None: no file), the line the error must name, and words it must contain."""

    id: str
    text: str | None
    line: int | None
    contains: tuple[str, ...]


BAD = [
    Bad(
        "gate-allowance-without-reason",
        "matrix:\n  arch: [resnet18]\ngate:\n  allow:\n    - {id: 'resnet18-*'}\n",
        5,
        ("'reason'", "required"),
    ),
    Bad(
        "unknown-top-level-key",
        "# resnetbench matrix\nmatrix:\n  arch: [resnet18]\nthreds: 2\n",
        4,
        ("'threds'", "top level", "Allowed keys:", "matrix", "Did you mean 'threads'?"),
    ),
    Bad(
        "unknown-key-in-matrix",
        "matrix:\n  arch: [resnet18]\n  backends: [eager]\n",
        3,
        (
            "'backends'",
            "in matrix",
            "arch, backend, batch, compression, dtype, exclude, include",
            "Did you mean 'backend'?",
        ),
    ),
    Bad(
        "unknown-arch",
        "matrix:\n  arch:\n    - resnet18\n    - resnet19\n",
        4,
        ("matrix.arch[1]", "'resnet19'", f"Allowed values: {ARCH_LIST}.", "Did you mean 'resnet18'?"),
    ),
    Bad(
        "unknown-dtype",
        "matrix:\n  arch: [resnet18]\n  dtype: [fp32, fp64]\n",
        3,
        ("matrix.dtype[1]", "'fp64'", f"Allowed values: {DTYPE_LIST}."),
    ),
    Bad(
        "unknown-backend",
        "matrix:\n  arch: [resnet18]\n  backend:\n    - eager\n    - tensorflow\n",
        5,
        ("'tensorflow'", "eager, torchscript, compile, onnxruntime, openvino"),
    ),
    Bad(
        "unknown-compression",
        "matrix:\n  arch: [resnet18]\n  compression: [none, quantise]\n",
        3,
        ("'quantise'", "none, dynamic, static, int8-budget, prune-l1-unstructured, prune-channels, distill"),
    ),
    Bad(
        "axis-as-string",
        "matrix:\n  arch: resnet18\n",
        2,
        ("matrix.arch", "expected a list", "'resnet18'", "[resnet18]"),
    ),
    Bad(
        "batch-as-string",
        'matrix:\n  arch: [resnet18]\n  batch: "8"\n',
        3,
        ("matrix.batch", "expected a list", "'8'"),
    ),
    Bad(
        "batch-value-string",
        "matrix:\n  arch: [resnet18]\n  batch: [1, eight]\n",
        3,
        ("matrix.batch[1]", "expected an integer", "'eight'"),
    ),
    Bad(
        "batch-zero",
        "matrix:\n  arch: [resnet18]\n  batch:\n    - 1\n    - 0\n",
        5,
        ("matrix.batch[1]", "0 is too small", ">= 1"),
    ),
    Bad(
        "batch-negative",
        "matrix:\n  arch: [resnet18]\n  batch: [-4]\n",
        3,
        ("matrix.batch[0]", "-4", ">= 1"),
    ),
    Bad(
        "empty-axis",
        "matrix:\n  arch: [resnet18]\n  dtype: []\n",
        3,
        ("matrix.dtype", "empty", f"Allowed values: {DTYPE_LIST}."),
    ),
    Bad(
        "bad-indentation",
        "matrix:\n  arch: [resnet18]\n   dtype: [fp32]\n",
        3,
        ("malformed YAML",),
    ),
    Bad(
        "unclosed-bracket",
        "matrix:\n  arch: [resnet18, resnet50\n  dtype: [fp32]\n",
        3,
        ("malformed YAML", "']'", "line 2"),
    ),
    Bad(
        "tab-indentation",
        "matrix:\n\tarch: [resnet18]\n",
        2,
        ("malformed YAML", "tabs"),
    ),
    Bad("missing-file", None, None, ("no such matrix file",)),
    Bad("empty-file", "", None, ("empty", "'matrix:'")),
    Bad("comments-only", "# nothing yet\n", None, ("empty", "'matrix:'")),
    Bad(
        "top-level-list",
        "# a list, not a mapping\n- arch: [resnet18]\n",
        2,
        ("expected a mapping", "'matrix:'", "got a list"),
    ),
    Bad("no-matrix-key", "seed: 3\n", 1, ("missing the required key 'matrix'",)),
    Bad(
        "empty-matrix",
        "matrix: {}\nseed: 3\n",
        1,
        ("names no axis", "arch, dtype, compression, backend, batch, include"),
    ),
    Bad(
        "include-unknown-axis",
        "matrix:\n  arch: [resnet18]\n  include:\n    - arch: resnet50\n      precision: fp16\n",
        5,
        ("'precision'", "matrix.include[0]", "arch, backend, batch, compression, dtype, tolerances"),
    ),
    Bad(
        "include-unknown-arch",
        "matrix:\n  arch: [resnet18]\n  include:\n    - {backend: eager}\n    - {arch: resnet51}\n",
        5,
        ("matrix.include[1].arch", "'resnet51'", ARCH_LIST, "Did you mean 'resnet50'?"),
    ),
    Bad(
        "include-empty-entry",
        "matrix:\n  arch: [resnet18]\n  include:\n    - {}\n",
        4,
        ("matrix.include[0]", "empty entry", "at least one axis"),
    ),
    Bad(
        "exclude-with-tolerances",
        "matrix:\n  arch: [resnet18]\n  exclude:\n    - {tolerances: {cosine: 0.5}}\n",
        4,
        ("'tolerances'", "matrix.exclude[0]", "arch, backend, batch, compression, dtype"),
    ),
    Bad(
        "bad-tolerance-metric",
        "matrix:\n  arch: [resnet18]\ntolerances:\n  dtype:\n    fp16:\n      cosin: 0.99\n",
        6,
        ("'cosin'", "tolerances.dtype.fp16", "rel_l2", "top1_agreement", "Did you mean 'cosine'?"),
    ),
    Bad(
        "negative-tolerance",
        "matrix:\n  arch: [resnet18]\ntolerances:\n  compression:\n    static:\n      top1_drop_points: -1\n",
        6,
        ("tolerances.compression.static.top1_drop_points", "-1", ">= 0"),
    ),
    Bad(
        "negative-include-tolerance",
        "matrix:\n  arch: [resnet18]\n  include:\n    - arch: resnet18\n      tolerances: {rel_l2: -0.5}\n",
        5,
        ("matrix.include[0].tolerances.rel_l2", "-0.5", ">= 0"),
    ),
    Bad(
        "duplicate-axis-values",
        "matrix:\n  arch:\n    - resnet18\n    - resnet50\n    - resnet18\n",
        5,
        ("matrix.arch", "'resnet18'", "more than once"),
    ),
    Bad(
        "duplicate-key",
        "matrix:\n  arch: [resnet18]\n  dtype: [fp32]\n  arch: [resnet50]\n",
        4,
        ("'arch'", "twice", "line 2"),
    ),
    Bad(
        "weights-bad-source",
        "matrix:\n  arch: [resnet18]\nweights: {source: pretrained}\n",
        3,
        ("weights.source", "'pretrained'", "random, torchvision, path, train"),
    ),
    Bad(
        "weights-not-a-value",
        "matrix:\n  arch: [resnet18]\nweights: 3\n",
        3,
        ("weights", "3", "random", "torchvision"),
    ),
    Bad(
        "weights-path-without-path",
        "matrix:\n  arch: [resnet18]\nweights:\n  source: path\n",
        4,
        ("weights", "'path'", "needs a 'path:'"),
    ),
    Bad(
        "imagefolder-without-path",
        "matrix:\n  arch: [resnet18]\n\ndataset: {name: imagefolder}\n",
        4,
        ("dataset", "'imagefolder'", "needs a 'path:'"),
    ),
    Bad(
        "architecture-not-an-import-path",
        'matrix:\n  arch: [resnet18]\narchitectures:\n  x: "not a path"\n',
        4,
        ("architectures.x", "'not a path'", "package.module:function"),
    ),
    Bad(
        "mixed-key-types",
        "matrix:\n  arch: [resnet18]\n  1: [a]\n  foo: [b]\n",
        3,
        ("unknown key 1", "Allowed keys:"),
    ),
    Bad(
        "yaml-boolean-key",
        "matrix:\n  arch: [resnet18]\n  on: [push]\n",
        3,
        ("unknown key True", "quote the key"),
    ),
]


def _write(bad: Bad, tmp_path: Path) -> Path:
    path = tmp_path / "m.yaml"
    if bad.text is not None:
        path.write_text(bad.text, encoding="utf-8")
    return path


def _check_message(msg: str, path: Path, bad: Bad) -> None:
    if bad.line is None:
        assert msg.startswith(f"{path}: "), msg
    else:
        assert msg.startswith(f"{path}:{bad.line}: "), msg
    for word in bad.contains:
        assert word in msg, f"{word!r} not in {msg!r}"
    assert "Traceback" not in msg and 'File "' not in msg
    assert "\n" not in msg.strip()


def test_at_least_fifteen_malformed_inputs() -> None:
    assert len({b.id for b in BAD}) == len(BAD) >= 15


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_malformed_matrix_raises_config_error(bad: Bad, tmp_path: Path) -> None:
    path = _write(bad, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    _check_message(str(info.value), path, bad)
    # no chained exception (a YAML or schema error) for a traceback to show
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        load_config(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: ")


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xff\xfe matrix")
    with pytest.raises(ConfigError, match=r"m\.yaml:1: not UTF-8 text \(byte 0xff at offset 0\)"):
        load_config(path)


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_cli_validate_rejects_malformed(bad: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(bad, tmp_path)
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    paragraph = err.strip()
    assert paragraph and "\n\n" not in paragraph and paragraph.count("\n") == 0, err
    assert paragraph.startswith("resnetbench: error: ")
    _check_message(paragraph.removeprefix("resnetbench: error: "), path, bad)


def test_cli_validate_rejects_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_cli_validate_accepts_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "matrix:\n  arch: [resnet18, resnet50]\n  dtype: [fp32, fp16]\n  backend: [eager]\n"
        "  exclude:\n    - {arch: resnet50, dtype: fp16}\n",
        encoding="utf-8",
    )
    assert cli.main(["validate", str(path), "--list"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "3 cases" in out
    assert "resnet50-fp32-none-eager-b1" in out and "resnet50-fp16" not in out


def _schema_from_cli(capsys: pytest.CaptureFixture[str]) -> dict:
    assert cli.main(["schema"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_cli_schema_is_valid_draft_2020_12(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _schema_from_cli(capsys)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(yaml.safe_load(MINIMAL))
    # the schema alone (an editor's view) rejects what loading rejects
    assert not validator.is_valid({"matrix": {"arch": ["resnet19"]}})
    assert not validator.is_valid({"matrix": {}})
    assert not validator.is_valid({"matrix": {"arch": ["resnet18"], "batch": [0]}})
    assert not validator.is_valid({"matrix": {"arch": ["resnet18"], "exclude": [{"tolerances": {"cosine": 1}}]}})


def test_cli_schema_validates_default_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    default = REPO / "matrix.yaml"
    if not default.exists():
        pytest.skip("no default matrix.yaml in the repository yet")
    schema = _schema_from_cli(capsys)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(default.read_text())))
    assert errors == []


def test_json_schema_lists_extra_architectures() -> None:
    schema = json_schema(archs=("resnet18", "mynet"))
    assert schema["properties"]["matrix"]["properties"]["arch"]["items"]["enum"] == ["resnet18", "mynet"]


def test_minimal_matrix_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert len(MINIMAL.splitlines()) == 3
    cfg = load_config(path)
    assert cfg.path == path
    assert cfg.matrix == {"arch": ["resnet18"], "backend": ["eager"]}
    assert cfg.weights == {"source": "random", "seed": 0}
    assert cfg.dataset == DatasetSettings(name="synthetic") and dict(cfg.dataset) == {"name": "synthetic"}
    assert cfg.input_size == 224
    assert cfg.seed == 0
    assert cfg.threads is None
    assert cfg.allow_slow is False
    # processes: 1 under this suite's conftest (RESNETBENCH_LATENCY_PROCESSES), else 3
    assert cfg.latency == LatencySettings(warmup=5, rounds=20, pairs=40, blocks=8, retimes=2, processes=1)
    assert cfg.tolerances == {} and cfg.cache == CacheSettings() and dict(cfg.cache) == {} and cfg.architectures == {}
    [case] = expand(cfg)
    assert case.id == "resnet18-fp32-none-eager-b1"
    assert case.tolerances == {"rel_l2": 1e-4, "centered_rel_l2": 1e-3, "top1_agreement": 0.99}


def test_partial_settings_keep_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL + "latency: {rounds: 7}\ngate: {threshold: 0.2}\nseed: 11\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.latency == LatencySettings(warmup=5, rounds=7, pairs=40, blocks=8, retimes=2, processes=1)
    assert cfg.gate.threshold == 0.2 and cfg.gate.memory_threshold == GateSettings().memory_threshold
    assert cfg.weights == {"source": "random", "seed": 11}


def test_gate_allowances_load(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL + "gate:\n  allow:\n    - {id: 'resnet152-*', reason: too slow here}\n", encoding="utf-8")
    assert load_config(path).gate.to_dict()["allow"] == [{"id": "resnet152-*", "reason": "too slow here"}]


def test_trained_weights_train_at_the_matrix_input_size(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL + "weights: {source: train, epochs: 2}\ninput_size: 64\n", encoding="utf-8")
    assert load_config(path).weights == {"source": "train", "dataset": "digits", "epochs": 2, "size": 64, "seed": 0}


def test_more_blocks_than_pairs_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL + "latency:\n  pairs: 4\n  blocks: 6\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m\.yaml:\d+: latency: blocks \(6\) cannot exceed pairs \(4\)"):
        load_config(path)


def test_relative_paths_resolve_against_the_matrix_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    (sub / "ckpt").mkdir(parents=True)
    (sub / "imgs" / "cat").mkdir(parents=True)
    (sub / "imgs" / "cat" / "1.png").write_bytes(b"")
    # an empty state_dict as torch.save writes it: a zip holding a protocol-2 pickle
    with zipfile.ZipFile(sub / "ckpt" / "r18.pt", "w") as zf:
        zf.writestr("r18/data.pkl", pickle.dumps(collections.OrderedDict(), protocol=2))
    path = sub / "m.yaml"
    path.write_text(MINIMAL + "weights: ckpt/r18.pt\ndataset: {name: imagefolder, path: imgs}\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.weights["source"] == "path"
    assert Path(cfg.weights["path"]) == sub / "ckpt" / "r18.pt"
    assert Path(cfg.dataset["path"]) == sub / "imgs"


def test_declared_architecture_is_an_allowed_arch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mypkg_nets.py").write_text("def build(num_classes=1000):\n    raise AssertionError('not called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: [resnet18, mynet]\narchitectures:\n  mynet: mypkg_nets:build\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.architectures == {"mynet": "mypkg_nets:build"}
    assert [c.arch for c in expand(cfg)] == ["resnet18", "mynet"]


def test_declared_extension_that_cannot_be_imported_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  backend: [eager]\nbackends:\n  mine: no_such_pkg.backend:Mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"m\.yaml:4: backends\.mine: cannot import 'no_such_pkg\.backend'"):
        load_config(path)


def test_restricted_arch_list_from_caller(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  arch: [resnet50]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Allowed values: resnet18, resnet34\."):
        load_config(path, archs=("resnet18", "resnet34"))


def test_include_only_matrix_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("matrix:\n  include:\n    - {arch: resnet50, backend: onnxruntime}\n", encoding="utf-8")
    assert [c.id for c in expand(load_config(path))] == ["resnet50-fp32-none-onnxruntime-b1"]


def test_latency_processes_default_and_its_override(tmp_path, monkeypatch):
    from resnetbench.config import LATENCY_DEFAULTS
    from resnetbench.settings import PROCESSES_ENV

    path = tmp_path / "m.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.delenv(PROCESSES_ENV)
    assert load_config(path).latency["processes"] == LATENCY_DEFAULTS["processes"] == 3
    monkeypatch.setenv(PROCESSES_ENV, "2")
    assert load_config(path).latency["processes"] == 2
    for bad in ("0", "x", "21", "-1"):
        monkeypatch.setenv(PROCESSES_ENV, bad)
        assert load_config(path).latency["processes"] == 3
    monkeypatch.setenv(PROCESSES_ENV, "1")
    path.write_text(MINIMAL + "latency: {processes: 4}\n", encoding="utf-8")
    assert load_config(path).latency["processes"] == 4  # the matrix wins over the environment


# --------------------------------------------------------------------------- backend settings
BACKEND_SETTINGS = """matrix:
  arch: [resnet18]
  backend: [openvino, onnxruntime]
  compression: [none, static]
  dtype: [fp32, int8]
  exclude: [{dtype: int8, compression: none}, {dtype: fp32, compression: static}]
"""


def test_backend_settings_reach_only_their_backend_s_cases(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(BACKEND_SETTINGS + "backend_settings: {openvino: {performance_hint: THROUGHPUT}}\n"
                    "compression_settings: {static: {calibration_samples: 8}}\n", encoding="utf-8")
    cases = {c.id: c for c in expand(load_config(path))}
    assert cases["resnet18-fp32-none-openvino-b1"].settings == {"performance_hint": "THROUGHPUT"}
    assert cases["resnet18-int8-static-openvino-b1"].settings == {"calibration_samples": 8,
                                                                  "performance_hint": "THROUGHPUT"}
    assert cases["resnet18-int8-static-onnxruntime-b1"].settings == {"calibration_samples": 8}
    assert cases["resnet18-fp32-none-onnxruntime-b1"].settings == {}


def test_backend_settings_the_backend_does_not_declare_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(BACKEND_SETTINGS + "backend_settings:\n  openvino: {performance_hnt: THROUGHPUT}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:8: unknown key 'performance_hnt' in backend_settings.openvino"
                                          r".*Did you mean 'performance_hint'"):
        load_config(path)
    path.write_text(BACKEND_SETTINGS + "backend_settings:\n  eager: {threads: 2}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:8: backend_settings.eager: `eager` declares no settings; remove it"):
        load_config(path)
    path.write_text(BACKEND_SETTINGS + "backend_settings:\n  openvino: {performance_hint: FAST}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:8: backend_settings.openvino.performance_hint: 'FAST' is not allowed"):
        load_config(path)


def test_backend_settings_as_matrices_wrote_them_before_still_load(tmp_path: Path) -> None:
    """Under a method's compression_settings, as before ``backend_settings`` existed; the legacy
    table accepts what the backends declare, with the same types."""
    from resnetbench.backends import get_backend
    from resnetbench.config import LEGACY_BACKEND_SETTINGS

    declared = {}
    for name in ("coreml", "openvino", "onnxruntime"):
        declared.update(get_backend(name).settings_schema or {})
    strip = ("description", "default")
    assert {k: {f: v for f, v in s.items() if f not in strip} for k, s in declared.items()} == \
        {k: {f: v for f, v in s.items() if f not in strip} for k, s in LEGACY_BACKEND_SETTINGS.items()}
    path = tmp_path / "m.yaml"
    path.write_text(BACKEND_SETTINGS + "compression_settings: {none: {performance_hint: THROUGHPUT}}\n")
    cases = {c.id: c for c in expand(load_config(path))}
    assert cases["resnet18-fp32-none-openvino-b1"].settings == {"performance_hint": "THROUGHPUT"}


def test_a_key_with_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    # found by tests/test_properties.py's generated documents: the error spanned two lines
    path = tmp_path / "m.yaml"
    path.write_text('matrix:\n  arch: [resnet18]\n  "\\n": .inf\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and f"{path}:3:" in message and "'\\n'" in message, message
