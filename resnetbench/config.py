"""Load and validate matrix files; export their JSON Schema.

The JSON Schema is the single statement of the format: ``resnetbench schema`` prints it
for editors, and loading validates against it with ``jsonschema``. Errors are turned
into one paragraph a person can act on: the file, the line (from the YAML node tree),
the key or value, the allowed values and a did-you-mean.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from resnetbench.architectures import ARCHITECTURES
from resnetbench.backends import BACKENDS
from resnetbench.compress import COMPRESSIONS
from resnetbench.formulas import DTYPE_BYTES
from resnetbench.records import AXES
from resnetbench.registry import Registry, RegistryError

__all__ = ["AXES", "Config", "ConfigError", "json_schema", "load_config"]

DTYPES = tuple(DTYPE_BYTES)
# The extension kinds a matrix can declare by import path, and their registries.
EXTENSION_KEYS = ("architectures", "backends", "compressions")
IMPORT_PATH = re.compile(r"^[\w.]+:[\w.]+$")
# A ResNet-18 224x224 latency case makes rounds + warm-up + 2 x (pairs + 2) calls, each
# 28-40 ms here depending on the machine's period: 30 rounds took 5.0 s at 40 ms per
# call, 20 rounds + 40 pairs (109 calls) stay under the 5 s budget. The gate needs the
# pairs more than the plain loop needs rounds. p90 needs 64 rounds (set rounds: 64).
# An unstable timing (measure/stability.py) is re-timed up to ``retimes`` times.
LATENCY_DEFAULTS = {"warmup": 5, "rounds": 20, "pairs": 40, "blocks": 8, "retimes": 2}
ACCURACY_METRICS = {
    # metric: (direction, description); "max" means the value must stay <= limit
    "rel_l2": ("max", "relative L2 error of the logits"),
    "max_abs": ("max", "largest absolute logit difference"),
    "cosine": ("min", "cosine similarity of the logits"),
    "centered_cosine": ("min", "cosine of the input-dependent part (logits minus the reference's batch mean)"),
    "centered_rel_l2": ("max", "L2 error relative to the input-dependent part of the reference logits"),
    "spread_error": ("max", "|ln| of the ratio of output spread across inputs, case vs reference"),
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


def _registries() -> dict[str, Registry[Any]]:
    return {"architectures": ARCHITECTURES, "backends": BACKENDS, "compressions": COMPRESSIONS}


def json_schema(
    archs: tuple[str, ...] | None = None,
    backends: tuple[str, ...] | None = None,
    compressions: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The JSON Schema of a matrix file; names default to what the registries hold now
    (built-ins, installed entry points, registered extras)."""
    archs = archs or ARCHITECTURES.names()
    backends = backends or BACKENDS.names()
    compressions = compressions or COMPRESSIONS.names()

    def axis(values: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "uniqueItems": True, "items": values}

    axis_values: dict[str, dict[str, Any]] = {
        "arch": {"type": "string", "enum": list(archs)},
        "dtype": {"type": "string", "enum": list(DTYPES)},
        "compression": {"type": "string", "enum": list(compressions)},
        "backend": {"type": "string", "enum": list(backends)},
        "batch": {"type": "integer", "minimum": 1, "maximum": 4096},
    }
    combo = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {**axis_values, "tolerances": _tolerance_block()},
    }
    # An exclude entry names axes only: one without any would match, and drop, every case.
    exclude_combo = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": dict(axis_values),
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
                "properties": {c: _tolerance_block() for c in compressions},
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
                    "calibration": {"type": "string"},
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
                    "exclude": {"type": "array", "items": exclude_combo},
                },
                # Without an axis or an include entry there is nothing to expand.
                "anyOf": [{"required": [name]} for name in (*AXES, "include")],
            },
            "tolerances": tolerances,
            "weights": weights,
            "dataset": dataset,
            "input_size": {"type": "integer", "minimum": 16, "maximum": 1024},
            "seed": {"type": "integer"},
            "threads": {"type": "integer", "minimum": 1},
            "allow_slow": {"type": "boolean"},
            "claims": {"type": "boolean", "description": "also check the guide's claims (default true)"},
            "latency": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "warmup": {"type": "integer", "minimum": 0},
                    "rounds": {"type": "integer", "minimum": 1,
                               "description": "timed calls in the pytest-benchmark loop (the reported latency)"},
                    "pairs": {"type": "integer", "minimum": 1,
                              "description": "[reference call, case call] pairs timed for the gate"},
                    "blocks": {"type": "integer", "minimum": 1,
                               "description": "blocks the pairs are cut into (the gate's unit)"},
                    "retimes": {"type": "integer", "minimum": 0, "maximum": 5,
                                "description": "re-timings of a case whose timing was unstable"},
                },
            },
            "limits": {
                "type": "object",
                "additionalProperties": False,
                "description": "per test of a case, enforced under --isolate (the worker is killed past them)",
                "properties": {
                    "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                    "memory_gb": {"type": "number", "exclusiveMinimum": 0},
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
                "properties": {c: {"type": "object"} for c in compressions},
            },
            **{
                key: {
                    "type": "object",
                    "description": f"extra {key}: name -> 'package.module:{target}'",
                    "additionalProperties": {"type": "string", "pattern": IMPORT_PATH.pattern},
                }
                for key, target in (("architectures", "factory"), ("backends", "BackendClass"),
                                    ("compressions", "METHOD"))
            },
            "gate": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "threshold": {"type": "number", "exclusiveMinimum": 0},
                    # cases the fail-closed gate lets through, each with the reason it prints
                    "allow": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "reason"],
                            "properties": {
                                "id": {"type": "string", "minLength": 1},
                                "reason": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
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
    claims: bool = True
    latency: dict[str, int] = field(default_factory=lambda: dict(LATENCY_DEFAULTS))
    cache: dict[str, Any] = field(default_factory=dict)
    compression_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    architectures: dict[str, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    compressions: dict[str, str] = field(default_factory=dict)
    gate: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)  # --isolate's per-test limits (isolation.py)


def _key_matches(node: yaml.Node, key: Any) -> bool:
    """Whether a mapping key node loads as ``key`` (``on:`` loads as True, ``1:`` as 1)."""
    if not isinstance(node, yaml.ScalarNode):
        return False
    if node.value == key:
        return True
    if node.tag == "tag:yaml.org,2002:str" or isinstance(key, str):
        return False
    try:
        return bool(yaml.safe_load(node.value) == key)
    except yaml.YAMLError:
        return False


def _node_at(node: yaml.Node | None, path: list[Any]) -> yaml.Node | None:
    """The deepest YAML node along a JSON path (for a line number)."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if _key_matches(k, key):
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
            if _key_matches(k, key):
                return k
    return parent


def _duplicate_key(node: yaml.Node | None) -> tuple[str, int, int] | None:
    """The first key written twice in one mapping: (key, first line, second line).

    PyYAML keeps the last value silently, so an axis written twice would lose its first list.
    """
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                ident = (k.tag, k.value)
                if ident in seen:
                    return k.value, seen[ident], k.start_mark.line + 1
                seen[ident] = k.start_mark.line + 1
            found = _duplicate_key(v)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item)
            if found:
                return found
    return None


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
        # keys need not be strings (``1:``, ``on:``), so sort by their text
        extra = sorted(set(error.instance) - set(allowed), key=str)
        key = extra[0] if extra else "?"
        node = _key_node(root, path, key)
        place = f"in {where}" if path else "at the top level"
        allowed_text = ", ".join(allowed) if allowed else "(none)"
        msg = f"unknown key {key!r} {place}. Allowed keys: {allowed_text}.{_suggest(key, allowed)}"
        if isinstance(key, bool):
            msg += " (YAML reads a bare on/off/yes/no as a boolean; quote the key.)"
    elif validator == "enum":
        allowed = list(schema["enum"])
        msg = (
            f"{where}: {error.instance!r} is not allowed. Allowed values: "
            f"{', '.join(map(str, allowed))}.{_suggest(error.instance, allowed)}"
        )
    elif validator == "type":
        expected = schema["type"]
        got = _yaml_type(error.instance)
        if error.instance is not None:
            got += f" {error.instance!r}"
        msg = f"{where}: expected {_article(expected)}, got {got}."
        scalar = isinstance(error.instance, str | int | float) and not isinstance(error.instance, bool)
        if expected == "array" and scalar:
            msg += f" Write a list, e.g. [{error.instance}]."
    elif validator in ("minimum", "exclusiveMinimum"):
        msg = f"{where}: {error.instance!r} is too small; it must be {'>=' if validator == 'minimum' else '>'} {error.validator_value}."
    elif validator == "maximum":
        msg = f"{where}: {error.instance!r} is too large; it must be <= {error.validator_value}."
    elif validator == "minItems":
        allowed = schema.get("items", {}).get("enum")
        hint = f" Allowed values: {', '.join(map(str, allowed))}." if allowed else ""
        msg = f"{where}: the axis is empty; list at least one value.{hint}"
    elif validator == "uniqueItems":
        value, index = _first_repeat(error.instance)
        repeat = _node_at(root, [*path, index])
        if repeat is not None:
            node = repeat
        msg = f"{where}: {value!r} appears more than once; each value may appear once."
    elif validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        msg = f"{where}: missing the required key {', '.join(map(repr, missing))}."
    elif validator == "anyOf" and path == ["matrix"]:
        msg = (
            f"matrix: names no axis and no include entry, so there is nothing to run. "
            f"List at least one of: {', '.join(AXES)}, include."
        )
    elif validator == "minProperties":
        msg = f"{where}: an empty entry matches every case; name at least one axis."
    elif validator == "pattern":
        msg = f"{where}: {error.instance!r} must look like 'package.module:function' (or ':Class', ':OBJECT')."
    elif validator == "oneOf":
        msg = f"{where}: {error.instance!r} is not a valid value here ({_oneof_hint(path)})."
    else:
        msg = f"{where}: {error.message}."
    line = node.start_mark.line + 1 if node is not None else None
    return msg, line


def _first_repeat(values: list[Any]) -> tuple[Any, int]:
    """The first value seen before, and the index of its repeat."""
    seen: list[Any] = []
    for i, value in enumerate(values):
        if value in seen:
            return value, i
        seen.append(value)
    return None, 0


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


def load_config(path: str | os.PathLike[str], archs: tuple[str, ...] | None = None) -> Config:
    """Read, validate and normalise a matrix file; raise ConfigError with file:line on bad input.

    The file's own ``architectures``/``backends``/``compressions`` import paths are
    registered first, so its axes may name them; ``archs`` narrows the known
    architectures (tests).

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
        raise ConfigError(_yaml_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}.") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least a 'matrix:' mapping.")
    first = root.start_mark.line + 1 if root is not None else 1
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{first}: expected a mapping with a 'matrix:' key, got {_yaml_type(data)}.")
    duplicate = _duplicate_key(root)
    if duplicate:
        key, line1, line2 = duplicate
        raise ConfigError(
            f"{path}:{line2}: key {key!r} appears twice in one mapping (first on line {line1}); "
            f"YAML would keep only the last one. Merge the two entries."
        )
    _register_import_paths(path, data, root)
    known_archs = None
    if archs is not None:
        declared = data.get("architectures")
        extra = tuple(declared) if isinstance(declared, dict) else ()
        known_archs = tuple(archs) + tuple(a for a in extra if a not in archs)
    schema = json_schema(known_archs)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        msg, line = _describe(_best_error(errors), root)
        more = f" ({len(errors) - 1} more problem(s) after this one.)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {msg}{more}")
    return _normalise(path, data, root)


def _register_import_paths(path: Path, data: dict[str, Any], root: yaml.Node | None) -> None:
    """Register the matrix's ``name: "pkg.mod:attr"`` extensions; an import that fails names its line."""
    for key, registry in _registries().items():
        declared = data.get(key)
        if not isinstance(declared, dict):
            continue  # the schema says what is wrong with it
        for name, target in declared.items():
            if not isinstance(name, str) or not isinstance(target, str) or not IMPORT_PATH.match(target):
                continue  # the schema says what is wrong with it
            try:
                registry.add_target(name, target)
            except RegistryError as exc:
                raise ConfigError(f"{_line(path, root, [key, name])}: {key}.{name}: {exc}.") from None


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """One sentence for a YAML syntax error: where it was found, and where the construct began."""
    mark = exc.problem_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = exc.problem or "unreadable YAML"
    context = ""
    if exc.context:
        started = exc.context_mark
        began = (
            f" (it began on line {started.line + 1})"
            if started is not None and mark is not None and started.line != mark.line
            else ""
        )
        context = f"{exc.context}{began}: "
    hint = " YAML indents with spaces, not tabs." if "'\\t'" in problem else ""
    return f"{path}{line}: malformed YAML: {context}{problem}.{hint}"


def _line(path: Path, root: yaml.Node | None, keys: list[Any]) -> str:
    node = _node_at(root, keys)
    return f"{path}:{node.start_mark.line + 1}" if node is not None else str(path)


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
            where = _line(path, root, ["weights"])
            raise ConfigError(f"{where}: weights: source 'path' needs a 'path:' to a checkpoint.")
        wpath = Path(weights["path"])
        if not wpath.is_absolute():
            wpath = path.parent / wpath
        weights = {**weights, "path": str(wpath)}
    if weights["source"] == "train":
        # Trained at the size the matrix evaluates at: a model trained on 32x32 digits is at
        # chance on 64x64 ones (measured: fp32 top-1 9.4% on 10 classes, undecidable).
        weights = {"dataset": "digits", "epochs": 8, **weights, "size": data.get("input_size", 224)}
    kwargs["weights"] = {"seed": data.get("seed", 0), **weights}
    dataset = data.get("dataset", "synthetic")
    if isinstance(dataset, str):
        dataset = {"name": dataset}
    if dataset["name"] == "imagefolder":
        if not dataset.get("path"):
            where = _line(path, root, ["dataset"])
            raise ConfigError(f"{where}: dataset: 'imagefolder' needs a 'path:' to class folders.")
        for key in ("path", "labels", "calibration"):
            if dataset.get(key) and not Path(dataset[key]).is_absolute():
                dataset = {**dataset, key: str(path.parent / dataset[key])}
    kwargs["dataset"] = dataset
    for key in ("tolerances", "input_size", "seed", "threads", "allow_slow", "claims", "cache", "limits",
                "compression_settings", *EXTENSION_KEYS):
        if key in data:
            kwargs[key] = data[key]
    if "latency" in data:
        kwargs["latency"] = {**LATENCY_DEFAULTS, **data["latency"]}
        if kwargs["latency"]["blocks"] > kwargs["latency"]["pairs"]:
            where = _line(path, root, ["latency"])
            raise ConfigError(f"{where}: latency: blocks ({kwargs['latency']['blocks']}) cannot exceed pairs "
                              f"({kwargs['latency']['pairs']}): each block needs at least one pair.")
    if "gate" in data:
        kwargs["gate"] = dict(data["gate"])
    return Config(**kwargs)
