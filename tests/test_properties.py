"""Property-based tests (Hypothesis) of the two loaders that read what users hand in.

- The matrix loader: any text, any bytes, any YAML-ish document built from the matrix's
  own vocabulary (with aliases, tags, NaN, huge integers, wrong types) either loads and
  expands, or raises ConfigError with a one-line message naming the file. Never another
  exception.
- The results loader: any JSON (NaN and Infinity included), any text, any damage to a
  real results file either loads or raises ResultsError naming the file; what loads, merge
  takes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from resnetbench import results as results_io
from resnetbench.config import ConfigError, load_config
from resnetbench.matrix import expand
from resnetbench.report import render_markdown

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "data" / "results_example.json"

# Loading a matrix takes ~30 ms here (mostly reading entry points for the registries).
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


# --------------------------------------------------------------------------- matrix loader

# The matrix's own words, so that generated documents get past the first checks and reach
# the deeper ones (settings, files, ranges, expansion), plus words that are nearly right.
KEYS = ["matrix", "arch", "dtype", "compression", "backend", "batch", "include", "exclude", "tolerances",
        "weights", "dataset", "input_size", "seed", "threads", "latency", "compression_settings", "gate",
        "cache", "claims", "allow_slow", "size", "relative", "rel_l2", "centered_cosine", "top1_drop_points",
        "source", "path", "name", "samples", "labels", "calibration", "rounds", "pairs", "blocks", "warmup",
        "threshold", "allow", "id", "reason", "static", "calibration_samples", "prune-channels", "amount",
        "distill", "teacher", "alpha", "fp16", "dir", "max_gb", "limits", "archs", "on", "1"]
WORDS = ["resnet18", "resnet50", "resnet19", "fp32", "fp16", "int8", "fp8", "none", "static", "dynamic",
         "prune-l1-unstructured", "eager", "onnxruntime", "onnxruntim", "random", "torchvision", "torchvison",
         "train", "digits", "synthetic", "imagefolder", "ckpt.pt", "weights.safetensors", "imgs", "/dev/null",
         "", "~", "yes", "no_such_module_xyz:thing", "1e29", "global", "layer"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 16, 224, 1024, 4096, 4097, 2**32, 10**29]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers(-3, 3), st.booleans()),
                        children, max_size=6),
    ),
    max_leaves=40,
)
# Whole matrices: mostly the right top-level keys, with anything as their values.
matrices = st.fixed_dictionaries(
    {"matrix": st.one_of(documents, st.fixed_dictionaries(
        {}, optional={axis: documents for axis in ("arch", "dtype", "compression", "backend", "batch", "include",
                                                   "exclude")}))},
    optional={key: documents for key in ("weights", "dataset", "input_size", "seed", "tolerances", "latency",
                                         "compression_settings", "gate", "cache", "threads")},
)
# Nearly right matrices: real names and values with a few wrong ones among them, so that
# many load and expand, and the rest fail deep (settings, ranges, memory, expansion).
def _axis(values: list[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)


AXIS_VALUES: dict[str, list[Any]] = {
    "arch": ["resnet18", "resnet34", "resnet50", "resnet19"],
    "dtype": ["fp32", "fp16", "bf16", "int8", "fp8"],
    "compression": ["none", "dynamic", "static", "prune-l1-unstructured", "prune-channels", "distill", "statc"],
    "backend": ["eager", "onnxruntime", "openvino", "cuda", "onnxruntim"],
    "batch": [1, 2, 8, 64, 4096, 0, -1],
}
entries = st.dictionaries(st.sampled_from(sorted(AXIS_VALUES)), st.sampled_from([v for vs in AXIS_VALUES.values()
                                                                                for v in vs]), max_size=3)
nearly_right = st.fixed_dictionaries(
    {"matrix": st.fixed_dictionaries(
        {"arch": _axis(AXIS_VALUES["arch"])},
        optional={**{axis: _axis(values) for axis, values in AXIS_VALUES.items() if axis != "arch"},
                  "include": st.lists(entries, max_size=3), "exclude": st.lists(entries, max_size=2)})},
    optional={
        "input_size": st.sampled_from([16, 32, 224, 1024, 0, 2048]),
        "seed": st.sampled_from([0, 7, 2**32 - 1, 2**32, -1]),
        "weights": st.sampled_from(["random", "torchvision", "torchvison", "ckpt.pt", {"source": "train", "epochs": 2},
                                    {"source": "path"}]),
        "dataset": st.sampled_from(["synthetic", "digits", {"name": "synthetic", "samples": 10**6},
                                    {"name": "imagefolder", "path": "imgs"}, "cifar"]),
        "compression_settings": st.fixed_dictionaries({}, optional={
            "static": st.fixed_dictionaries({}, optional={"calibration_samples": st.integers(-5, 10**6)}),
            "prune-channels": st.fixed_dictionaries({}, optional={"amount": st.floats(-1, 8), "amout": st.just(1)}),
            "distill": st.fixed_dictionaries({}, optional={"teacher": st.sampled_from(["resnet50", "resnet51"]),
                                                           "alpha": st.floats(-1, 2)})}),
        "tolerances": st.fixed_dictionaries({}, optional={"dtype": st.fixed_dictionaries({}, optional={
            "fp16": st.dictionaries(st.sampled_from(["centered_cosine", "rel_l2", "cosin"]),
                                    st.floats(allow_nan=True, allow_infinity=True), max_size=2)})}),
        "latency": st.dictionaries(st.sampled_from(["rounds", "pairs", "blocks", "warmup"]), st.integers(-1, 10**6),
                                   max_size=3),
        "gate": st.fixed_dictionaries({}, optional={"threshold": st.floats(allow_nan=True, allow_infinity=True)}),
    },
)
# Fragments of YAML syntax, glued in any order: anchors, aliases, tags, flow and block
# collections, merge keys, documents, odd characters.
FRAGMENTS = ["matrix:", "\n", "  ", "arch:", " [resnet18]", " &a", " *a", "<<: *a", " !!python/object:os.system",
             " !!binary aGk=", " !!set {x}", " !!omap [a: 1]", " !tag", "- ", "{", "}", "[", "]", ", ", ": ", "? ",
             "---\n", "...\n", "'", '"', "#", "\t", "\x00", "\ufeff", "\u2028", "batch: [1, 2]", "seed: .nan",
             "input_size: 1e3", "weights: torchvison", "2020-01-01", "0x1F", "1_000", "1:30", "~", "null"]
fragmented = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)


def _load_or_refuse(path: Path) -> None:
    """The property: a matrix loads and expands, or one ConfigError line names the file."""
    try:
        expand(load_config(path))
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith(str(path)), msg
        assert "\n" not in msg and "Traceback" not in msg, msg


@SETTINGS
@given(text=st.text(max_size=400))
def test_any_text_loads_or_raises_config_error(text: str, work: Path) -> None:
    path = work / "text.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load_or_refuse(path)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_any_bytes_load_or_raise_config_error(raw: bytes, work: Path) -> None:
    path = work / "bytes.yaml"
    path.write_bytes(raw)
    _load_or_refuse(path)


@SETTINGS
@given(text=fragmented)
def test_yaml_syntax_fragments_load_or_raise_config_error(text: str, work: Path) -> None:
    path = work / "fragments.yaml"
    path.write_text(text, encoding="utf-8")
    _load_or_refuse(path)


@SETTINGS
@given(data=matrices, flow=st.booleans())
def test_matrix_shaped_documents_load_or_raise_config_error(data: dict[str, Any], flow: bool, work: Path) -> None:
    path = work / "doc.yaml"
    path.write_text(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True), encoding="utf-8")
    _load_or_refuse(path)


@SETTINGS
@given(data=nearly_right)
def test_nearly_right_matrices_load_or_raise_config_error(data: dict[str, Any], work: Path) -> None:
    path = work / "nearly.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    _load_or_refuse(path)


@SETTINGS
@given(data=matrices, cut=st.integers(min_value=0, max_value=2000), junk=st.sampled_from(FRAGMENTS))
def test_damaged_documents_load_or_raise_config_error(data: dict[str, Any], cut: int, junk: str, work: Path) -> None:
    text = yaml.safe_dump(data)
    cut %= len(text) + 1
    path = work / "damaged.yaml"
    path.write_text(text[:cut] + junk + text[cut:], encoding="utf-8")
    _load_or_refuse(path)


# --------------------------------------------------------------------------- results loader

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=25,
)


def _paths(value: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every JSON path inside a value (for damaging one place of a real file)."""
    out = [trail]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*trail, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*trail, index))
    return out


EXAMPLE_DATA = json.loads(EXAMPLE.read_text())
EXAMPLE_PATHS = _paths(EXAMPLE_DATA)[1:]
# the top of the file (the environment and its parts, the case list, each case as a whole) as often as
# its 700 leaves
SHALLOW_PATHS = [p for p in EXAMPLE_PATHS if len(p) <= 2 or (len(p) == 3 and p[0] == "environment")]


def _load_or_refuse_results(path: Path) -> None:
    """The property: a results file loads (and merges), or one ResultsError line names the file."""
    try:
        data = results_io.load(path)
    except results_io.ResultsError as exc:
        msg = str(exc)
        assert msg.startswith(str(path)) and "\n" not in msg, msg
        return
    assert isinstance(data, dict) and isinstance(data["cases"], list)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in _leaves(data))
    try:
        results_io.merge([path], allow_mixed=False)
    except results_io.ResultsError as exc:
        assert "different machines" in str(exc), exc
    render_markdown(data)  # the summary reads the machine header as the HTML report does


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for child in value.values() for leaf in _leaves(child)]
    if isinstance(value, list):
        return [leaf for child in value for leaf in _leaves(child)]
    return [value]


@SETTINGS
@given(value=json_values)
def test_any_json_loads_or_raises_results_error(value: Any, work: Path) -> None:
    path = work / "any.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    _load_or_refuse_results(path)


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_as_results_raises_results_error(text: str, work: Path) -> None:
    path = work / "text.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load_or_refuse_results(path)


@SETTINGS
@given(where=st.one_of(st.sampled_from(SHALLOW_PATHS), st.sampled_from(EXAMPLE_PATHS)), value=json_values,
       delete=st.booleans())
def test_a_real_results_file_damaged_in_one_place(where: tuple[Any, ...], value: Any, delete: bool, work: Path
                                                  ) -> None:
    data = json.loads(json.dumps(EXAMPLE_DATA))
    parent = data
    for key in where[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    path = work / "damaged.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    _load_or_refuse_results(path)


WRONG_TYPES: list[Any] = [None, True, 0, 1.5, -1, "x", [], [1], {}, {"hash": 1}, [{"id": 3}]]


@pytest.mark.parametrize("where", SHALLOW_PATHS, ids=[".".join(map(str, p)) for p in SHALLOW_PATHS])
def test_every_top_part_of_a_results_file_with_every_wrong_type(where: tuple[Any, ...], work: Path) -> None:
    """Exhaustive where random sampling is thin: each part near the top, replaced by each
    kind of JSON value (a fingerprint that was a string crashed merge)."""
    for value in WRONG_TYPES:
        data = json.loads(json.dumps(EXAMPLE_DATA))
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = value
        path = work / "typed.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        _load_or_refuse_results(path)


def _at(value: Any, where: tuple[Any, ...]) -> Any:
    for key in where:
        value = value[key]
    return value


NUMBER_PATHS = [p for p in EXAMPLE_PATHS if type(_at(EXAMPLE_DATA, p)) in (int, float)]


@SETTINGS
@given(where=st.sampled_from(NUMBER_PATHS), number=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                                            st.integers(min_value=-(10**30), max_value=10**30)))
def test_any_number_in_a_real_results_file(where: tuple[Any, ...], number: float, work: Path) -> None:
    """A measurement that is NaN or infinite never loads (json writes them as NaN/Infinity)."""
    data = json.loads(json.dumps(EXAMPLE_DATA))
    _at(data, where[:-1])[where[-1]] = number
    path = work / "number.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    if isinstance(number, float) and not math.isfinite(number):
        with pytest.raises(results_io.ResultsError, match="is not a number"):
            results_io.load(path)
    else:
        _load_or_refuse_results(path)


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=10**6))
def test_a_real_results_file_truncated_anywhere(cut: int, work: Path) -> None:
    text = EXAMPLE.read_text()
    cut %= len(text)
    assume(text[:cut].strip() and text[:cut].strip() != text.strip())
    path = work / "cut.json"
    path.write_text(text[:cut], encoding="utf-8")
    with pytest.raises(results_io.ResultsError, match="not valid JSON"):
        results_io.load(path)
