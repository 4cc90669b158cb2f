"""Load and validate matrix files; export their JSON Schema.

The JSON Schema is the single statement of the format: ``resnetbench schema`` prints it
for editors, and loading validates against it with ``jsonschema``. Errors are turned
into one paragraph a person can act on: the file, the line (from the YAML node tree),
the key or value, the allowed values and a did-you-mean.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from resnetbench.formulas import DTYPE_BYTES

BUILTIN_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
DTYPES = tuple(DTYPE_BYTES)
COMPRESSIONS = (
    "none",
    "dynamic",
    "static",
    "prune-l1-unstructured",
    "prune-channels",
    "distill",
)
BACKENDS = (
    "eager",
    "torchscript",
    "compile",
    "onnxruntime",
    "openvino",
    "cuda",
    "onnxruntime-cuda",
    "onnxruntime-tensorrt",
    "tensorrt",
)
AXES = ("arch", "dtype", "compression", "backend", "batch")
ACCURACY_METRICS = {
    # metric: (direction, description); "max" means the value must stay <= limit
    "rel_l2": ("max", "relative L2 error of the logits"),
    "max_abs": ("max", "largest absolute logit difference"),
    "cosine": ("min", "cosine similarity of the logits"),
    "top1_agreement": ("min", "fraction of inputs with the reference's top-1 class"),
    "top5_overlap": ("min", "mean overlap of the top-5 class sets"),
    "top1_drop_points": ("max", "task top-1 drop against fp32 uncompressed, in points"),
    "top1_ratio": ("min", "task top-1 as a fraction of fp32 uncompressed"),
}


class ConfigError(Exception):
    """A matrix file that cannot be used; the message is meant for the user as is."""


def _tolerance_block() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {m: {"type": "number", "minimum": 0} for m in ACCURACY_METRICS},
    }


def json_schema(
    archs: tuple[str, ...] = BUILTIN_ARCHS, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    """The JSON Schema of a matrix file (archs/backends include registered extras)."""

    def axis(values: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "uniqueItems": True, "items": values}

    axis_values = {
        "arch": {"type": "string", "enum": list(archs)},
        "dtype": {"type": "string", "enum": list(DTYPES)},
        "compression": {"type": "string", "enum": list(COMPRESSIONS)},
        "backend": {"type": "string", "enum": list(backends)},
        "batch": {"type": "integer", "minimum": 1, "maximum": 4096},
    }
    combo = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {**axis_values, "tolerances": _tolerance_block()},
    }
    tolerances = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "size": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "relative": {"type": "number", "minimum": 0, "maximum": 1},
                    "absolute_bytes": {"type": "integer", "minimum": 0},
                },
            },
            "dtype": {
                "type": "object",
                "additionalProperties": False,
                "properties": {d: _tolerance_block() for d in DTYPES},
            },
            "compression": {
                "type": "object",
                "additionalProperties": False,
                "properties": {c: _tolerance_block() for c in COMPRESSIONS},
            },
        },
    }
    weights = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["source"],
                "properties": {
                    "source": {"type": "string", "enum": ["random", "torchvision", "path", "train"]},
                    "seed": {"type": "integer"},
                    "path": {"type": "string"},
                    "dataset": {"type": "string", "enum": ["digits"]},
                    "epochs": {"type": "integer", "minimum": 1},
                },
            },
        ]
    }
    dataset = {
        "oneOf": [
            {"type": "string", "enum": ["synthetic", "digits"]},
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "enum": ["synthetic", "digits", "imagefolder"]},
                    "path": {"type": "string"},
                    "labels": {"type": "string"},
                    "samples": {"type": "integer", "minimum": 1},
                    "seed": {"type": "integer"},
                },
            },
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "resnetbench matrix",
        "type": "object",
        "additionalProperties": False,
        "required": ["matrix"],
        "properties": {
            "matrix": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **{name: axis(values) for name, values in axis_values.items()},
                    "include": {"type": "array", "items": combo},
                    "exclude": {"type": "array", "items": combo},
                },
            },
            "tolerances": tolerances,
            "weights": weights,
            "dataset": dataset,
            "input_size": {"type": "integer", "minimum": 16, "maximum": 1024},
            "seed": {"type": "integer"},
            "threads": {"type": "integer", "minimum": 1},
            "allow_slow": {"type": "boolean"},
            "latency": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "warmup": {"type": "integer", "minimum": 0},
                    "rounds": {"type": "integer", "minimum": 1},
                },
            },
            "cache": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "dir": {"type": "string"},
                    "max_gb": {"type": "number", "exclusiveMinimum": 0},
                },
            },
            "compression_settings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {c: {"type": "object"} for c in COMPRESSIONS},
            },
            "architectures": {
                "type": "object",
                "description": "extra architectures: name -> 'package.module:factory'",
                "additionalProperties": {"type": "string", "pattern": r"^[\w.]+:\w+$"},
            },
            "gate": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
    }


@dataclass(frozen=True)
class Config:
    """A validated matrix file: the raw axes plus settings with defaults filled in."""

    path: Path
    matrix: dict[str, Any]
    tolerances: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=lambda: {"source": "random", "seed": 0})
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "synthetic"})
    input_size: int = 224
    seed: int = 0
    threads: int | None = None
    allow_slow: bool = False
    latency: dict[str, int] = field(default_factory=lambda: {"warmup": 5, "rounds": 30})
    cache: dict[str, Any] = field(default_factory=dict)
    compression_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    architectures: dict[str, str] = field(default_factory=dict)
    gate: dict[str, float] = field(default_factory=lambda: {"threshold": 0.05})


def _node_at(node: yaml.Node | None, path: list[Any]) -> yaml.Node | None:
    """The deepest YAML node along a JSON path (for a line number)."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(key) or k.value == key:
                    nxt = v
                    break
            if nxt is None:
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _key_node(node: yaml.Node | None, path: list[Any], key: str) -> yaml.Node | None:
    parent = _node_at(node, path)
    if isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if k.value == key:
                return k
    return parent


def _where(path: list[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "top level"


def _suggest(value: Any, allowed: list[Any]) -> str:
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _describe(error: jsonschema.ValidationError, root: yaml.Node | None) -> tuple[str, int | None]:
    """A sentence for one schema error, and the line it points at."""
    path = list(error.absolute_path)
    where = _where(path)
    node = _node_at(root, path)
    validator = error.validator
    schema = error.schema
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = extra[0] if extra else "?"
        node = _key_node(root, path, key)
        place = f"in {where}" if path else "at the top level"
        allowed_text = ", ".join(allowed) if allowed else "(none)"
        msg = f"unknown key {key!r} {place}. Allowed keys: {allowed_text}.{_suggest(key, allowed)}"
    elif validator == "enum":
        allowed = list(schema["enum"])
        msg = (
            f"{where}: {error.instance!r} is not allowed. Allowed values: "
            f"{', '.join(map(str, allowed))}.{_suggest(error.instance, allowed)}"
        )
    elif validator == "type":
        expected = schema["type"]
        msg = f"{where}: expected {_article(expected)}, got {_yaml_type(error.instance)} {error.instance!r}."
    elif validator in ("minimum", "exclusiveMinimum"):
        msg = f"{where}: {error.instance!r} is too small; it must be {'>=' if validator == 'minimum' else '>'} {error.validator_value}."
    elif validator == "maximum":
        msg = f"{where}: {error.instance!r} is too large; it must be <= {error.validator_value}."
    elif validator == "minItems":
        msg = f"{where}: the axis is empty; list at least one value."
    elif validator == "uniqueItems":
        msg = f"{where}: values repeat; each value may appear once."
    elif validator == "required":
        msg = f"{where}: {error.message}."
    elif validator == "minProperties":
        msg = f"{where}: an empty entry matches every case; name at least one axis."
    elif validator == "pattern":
        msg = f"{where}: {error.instance!r} must look like 'package.module:function'."
    elif validator == "oneOf":
        msg = f"{where}: {error.instance!r} is not a valid value here ({_oneof_hint(path)})."
    else:
        msg = f"{where}: {error.message}."
    line = node.start_mark.line + 1 if node is not None else None
    return msg, line


def _oneof_hint(path: list[Any]) -> str:
    if path and path[0] == "weights":
        return "use random, torchvision, a checkpoint path, or {source: random|torchvision|path|train, ...}"
    if path and path[0] == "dataset":
        return "use synthetic, digits, or {name: synthetic|digits|imagefolder, path: ..., samples: N}"
    return "see `resnetbench schema`"


def _article(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(expected)
    return {"array": "a list", "object": "a mapping", "integer": "an integer"}.get(expected, f"a {expected}")


def _yaml_type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _best_error(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    # Prefer the deepest error; for oneOf prefer the alternative that matched the type.
    error = jsonschema.exceptions.best_match(errors)
    if error.validator == "oneOf" and error.context:
        typed = [e for e in error.context if e.validator != "type"]
        if typed:
            return jsonschema.exceptions.best_match(typed)
    return error


def load_config(
    path: str | os.PathLike[str],
    archs: tuple[str, ...] | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> Config:
    """Read, validate and normalise a matrix file; raise ConfigError with file:line on bad input.

    Example::

        cfg = load_config("matrix.yaml")
        cfg.matrix["arch"]  # ['resnet18', 'resnet50']
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such matrix file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a matrix file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the matrix file: {exc}.") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: malformed YAML: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}.") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least a 'matrix:' mapping.")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping with a 'matrix:' key, got {_yaml_type(data)}.")
    extra_archs = data.get("architectures") if isinstance(data.get("architectures"), dict) else {}
    known_archs = tuple(archs or BUILTIN_ARCHS) + tuple(a for a in extra_archs if a not in (archs or BUILTIN_ARCHS))
    schema = json_schema(known_archs, backends)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        msg, line = _describe(_best_error(errors), root)
        more = f" ({len(errors) - 1} more problem(s) after this one.)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {msg}{more}")
    return _normalise(path, data, root)


def _normalise(path: Path, data: dict[str, Any], root: yaml.Node | None) -> Config:
    kwargs: dict[str, Any] = {"path": path, "matrix": dict(data["matrix"])}
    weights = data.get("weights", "random")
    if isinstance(weights, str):
        if weights in ("random", "torchvision"):
            weights = {"source": weights}
        else:
            weights = {"source": "path", "path": weights}
    if weights["source"] == "path":
        if not weights.get("path"):
            raise ConfigError(f"{path}: weights: source 'path' needs a 'path:'.")
        wpath = Path(weights["path"])
        if not wpath.is_absolute():
            wpath = path.parent / wpath
        weights = {**weights, "path": str(wpath)}
    if weights["source"] == "train":
        weights = {"dataset": "digits", "epochs": 8, **weights}
    kwargs["weights"] = {"seed": data.get("seed", 0), **weights}
    dataset = data.get("dataset", "synthetic")
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if dataset["name"] == "imagefolder":
        if not dataset.get("path"):
            line = _node_at(root, ["dataset"])
            where = f":{line.start_mark.line + 1}" if line is not None else ""
            raise ConfigError(f"{path}{where}: dataset: 'imagefolder' needs a 'path:' to class folders.")
        dpath = Path(dataset["path"])
        if not dpath.is_absolute():
            dataset = {**dataset, "path": str(path.parent / dpath)}
    kwargs["dataset"] = dataset
    for key in ("tolerances", "input_size", "seed", "threads", "allow_slow", "cache",
                "compression_settings", "architectures"):
        if key in data:
            kwargs[key] = data[key]
    if "latency" in data:
        kwargs["latency"] = {"warmup": 5, "rounds": 30, **data["latency"]}
    if "gate" in data:
        kwargs["gate"] = {"threshold": 0.05, **data["gate"]}
    return Config(**kwargs)
