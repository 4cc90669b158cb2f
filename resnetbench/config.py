"""Load and validate matrix files; export their JSON Schema.

The JSON Schema is the single statement of the format: ``resnetbench schema`` prints it
for editors, and loading validates against it with ``jsonschema``. Errors are turned
into one paragraph a person can act on: the file, the line (from the YAML node tree),
the key or value, the allowed values and a did-you-mean.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
import stat
from collections.abc import Collection
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from resnetbench.architectures import ARCHITECTURES, BUILTIN_ARCHS, DEFAULT_ARCH
from resnetbench.formulas import DTYPE_BYTES
from resnetbench.inputs import shown
from resnetbench.inputs.checkpoints import checkpoint_problem
from resnetbench.inputs.imagefolders import count_images, imagefolder_problem, labels_problem
from resnetbench.records import AXES
from resnetbench.registries import BACKENDS, COMPRESSIONS, DEFAULT_BACKEND, DEFAULT_COMPRESSION
from resnetbench.registry import Registry, RegistryError
from resnetbench.settings import (
    CALIBRATION_SAMPLES,
    DEFAULT_LATENCY_PROCESSES,
    RECIPE_NAME,
    SECTIONS,
    CacheSettings,
    DatasetSettings,
    DeploymentSettings,
    GateSettings,
    LatencySettings,
    LimitsSettings,
    ProfileSettings,
    ScenarioSettings,
    TuningSettings,
)

__all__ = ["AXES", "Config", "ConfigError", "checkpoint_problem", "imagefolder_problem", "json_schema",
           "load_config"]

DTYPES = tuple(DTYPE_BYTES)
# The extension kinds a matrix can declare by import path, and their registries.
EXTENSION_KEYS = ("architectures", "backends", "compressions")
# What an extension may be called: its name goes into case ids and cache file names (no path traversal).
EXTENSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
# Dotted identifiers on both sides: "..:x" or "a.:b" would reach importlib as a relative or
# empty module name and fail there with something other than an ImportError.
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# Hostile or broken input is refused before it can cost anything. The default matrix is
# 3 KB and ~300 YAML nodes; these limits are a hundred times what a real matrix needs.
MAX_MATRIX_BYTES = 1_000_000  # checked before the file is parsed
MAX_YAML_NODES = 20_000  # after expanding aliases: 7 levels of 10-way aliases are 10^7 nodes
MAX_YAML_DEPTH = 32
MAX_LIST_ITEMS = 1_000  # jsonschema's uniqueItems is quadratic on mixed-type lists
SEED_MAX = 2**32 - 1  # numpy's limit; torch takes 64 bits, the suite adds small offsets
# A ResNet-18 224x224 latency case makes rounds + warm-up + 2 x (pairs + 2) calls, each
# The sections' defaults, from their classes (settings.py), for code that wants a plain table.
LATENCY_DEFAULTS: dict[str, Any] = {**LatencySettings.defaults(), "processes": DEFAULT_LATENCY_PROCESSES}
TUNING_DEFAULTS: dict[str, Any] = TuningSettings.defaults()
PROFILE_DEFAULTS: dict[str, Any] = ProfileSettings.defaults()
DEPLOYMENT_DEFAULTS: dict[str, Any] = DeploymentSettings.defaults()
# Training on the bundled digits (train.py), for ``weights: {source: train}``.
TRAIN_DEFAULTS: dict[str, Any] = {"dataset": "digits", "epochs": 8}
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
# The largest limit each metric can take: cosines and fractions cannot exceed 1 (a limit of
# 5 would fail every case), a drop in points cannot exceed 100. The rest are open above:
# top1_ratio is a ratio of two accuracies (a compressed model can measure above fp32 on a
# sample, and a limit above 1 asks it to).
METRIC_MAXIMUM = {"cosine": 1, "centered_cosine": 1, "top1_agreement": 1, "top5_overlap": 1,
                  "top1_drop_points": 100}
# Backend settings as matrices wrote them before ``backend_settings:`` (under a method's
# compression_settings): still accepted there, with these types. The reference for each is the
# declaring backend's ``settings_schema`` (Backend.settings_schema);
# test_config checks the two agree.
LEGACY_BACKEND_SETTINGS: dict[str, Any] = {
    "compute_units": {"type": "string", "enum": ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"],
                      "description": "the compute units a converted model may use (backends that have them)"},
    "performance_hint": {"type": "string", "enum": ["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"],
                         "description": "the runtime's compile-time performance hint (backends that take one)"},
    "save_optimized": {"type": "boolean",
                       "description": "also store the runtime's optimised graph (backends that make one)"},
}


class ConfigError(Exception):
    """A matrix file that cannot be used; the message is meant for the user as is."""


def _tolerance_block() -> dict[str, Any]:
    def limit(metric: str) -> dict[str, Any]:
        top = METRIC_MAXIMUM.get(metric)
        return {"type": "number", "minimum": 0, **({"maximum": top} if top is not None else {})}

    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {m: limit(m) for m in ACCURACY_METRICS},
    }


def _settings_schemas(compressions: tuple[str, ...], archs: tuple[str, ...],
                      resolve: Collection[str] | None = None) -> dict[str, Any]:
    """``compression_settings``: each method's declared settings (``Method.settings_schema``),
    plus the settings backends read; a method that declares none takes any mapping.

    Reading a declaration imports the method's module: only the methods in ``resolve`` (the
    ones a matrix sets) are read, or the built-ins (torch-free) when it is None, so an
    installed plugin that imports torch is not imported to validate a matrix that never uses it.
    """

    def named(prop: dict[str, Any]) -> dict[str, Any]:
        prop = dict(prop)
        if prop.pop("x-names", None) == "architectures":
            prop["enum"] = list(archs)
        return prop

    out: dict[str, Any] = {}
    for name in compressions:
        declared, defaults = None, {}
        if (name in resolve) if resolve is not None else (name in COMPRESSIONS._builtin):
            try:
                method = COMPRESSIONS.get(name)
                declared, defaults = method.settings_schema, dict(method.defaults)
            except Exception:  # a broken plugin fails where a matrix runs it, not here
                declared = None
        if declared is None:
            out[name] = {"type": "object", "description": f"settings of `{name}` (it declares none: any mapping)"}
            continue
        # the method's defaults are defined once, on the method; the schema shows them
        properties = {key: {**named(prop), **({"default": defaults[key]} if key in defaults else {})}
                      for key, prop in declared.items()}
        properties.update({k: v for k, v in LEGACY_BACKEND_SETTINGS.items() if k not in properties})
        out[name] = {"type": "object", "additionalProperties": False, "properties": properties,
                     "description": f"settings of `{name}`"}
    return out


def _backend_settings_schemas(backends: tuple[str, ...], resolve: Collection[str] | None = None) -> dict[str, Any]:
    """``backend_settings``: each backend's declared settings (``Backend.settings_schema``).

    Reading a declaration imports the backend's module (and torch): only the backends in
    ``resolve`` (the ones a matrix gives settings) are read, or the built-ins when it is None
    (``resnetbench schema``, the docs). A backend that cannot be imported here, or declares
    nothing, takes no settings.
    """
    out: dict[str, Any] = {}
    for name in backends:
        declared, why = None, f"`{name}` declares no settings"
        if (name in resolve) if resolve is not None else (name in BACKENDS._builtin):
            try:
                declared = BACKENDS.get(name).settings_schema
            except Exception as exc:  # a broken plugin: its settings cannot be checked, so none are taken
                why = f"`{name}` cannot be imported here to read its settings ({type(exc).__name__}: {exc})"[:300]
        if declared is None:
            out[name] = {"type": "object", "maxProperties": 0, "description": why}
            continue
        out[name] = {"type": "object", "additionalProperties": False, "properties": dict(declared),
                     "description": f"settings of `{name}`"}
    return out


def _registries() -> dict[str, Registry[Any]]:
    return {"architectures": ARCHITECTURES, "backends": BACKENDS, "compressions": COMPRESSIONS}


def json_schema(
    archs: tuple[str, ...] | None = None,
    backends: tuple[str, ...] | None = None,
    compressions: tuple[str, ...] | None = None,
    settings_of: Collection[str] | None = None,
    backend_settings_of: Collection[str] | None = None,
) -> dict[str, Any]:
    """The JSON Schema of a matrix file; names default to what the registries hold now
    (built-ins, installed entry points, registered extras). ``settings_of``: the methods whose
    declared settings to spell out (default: the built-ins; see ``_settings_schemas``);
    ``backend_settings_of`` the same for backends (``_backend_settings_schemas``)."""
    archs = archs or ARCHITECTURES.names()
    backends = backends or BACKENDS.names()
    compressions = compressions or COMPRESSIONS.names()

    def axis(values: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "uniqueItems": True, "items": values}

    seed = {"type": "integer", "minimum": 0, "maximum": SEED_MAX}

    axis_values: dict[str, dict[str, Any]] = {
        "arch": {"type": "string", "enum": list(archs)},
        "dtype": {"type": "string", "enum": list(DTYPES)},
        "compression": {"type": "string", "enum": list(compressions)},
        "backend": {"type": "string", "enum": list(backends)},
        "batch": {"type": "integer", "minimum": 1, "maximum": 4096},
    }
    axis_docs = {
        "arch": "architectures (the registry's names, plus the file's `architectures:`)",
        "dtype": "arithmetic of the artifact; int8 needs an int8 compression method",
        "compression": "compression methods (the registry's names, plus the file's `compressions:`)",
        "backend": "runtimes (the registry's names, plus the file's `backends:`)",
        "batch": "images per call",
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
                "description": "how far the artifact's bytes may be from the size formula",
                "properties": {
                    "relative": {"type": "number", "minimum": 0, "maximum": 1,
                                 "description": "fraction of the formula (default 0.02)"},
                    "absolute_bytes": {"type": "integer", "minimum": 0,
                                       "description": "bytes on top of the fraction (default 262144)"},
                },
            },
            "dtype": {
                "type": "object",
                "additionalProperties": False,
                "description": "accuracy limits per dtype: metric -> limit (overrides the built-ins)",
                "properties": {d: _tolerance_block() for d in DTYPES},
            },
            "compression": {
                "type": "object",
                "additionalProperties": False,
                "description": "accuracy limits per compression method: metric -> limit",
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
                    "source": {"type": "string", "enum": ["random", "torchvision", "path", "train"],
                               "description": "where the weights come from"},
                    "seed": {**seed, "description": "seed of random weights"},
                    "path": {"type": "string", "description": "checkpoint file (source: path)"},
                    "dataset": {"type": "string", "enum": ["digits"],
                                "description": "training set (source: train; offline, bundled with scikit-learn)"},
                    "epochs": {"type": "integer", "minimum": 1, "maximum": 1000,
                               "description": "training epochs (source: train)"},
                },
            },
        ]
    }
    dataset = {"oneOf": [{"type": "string", "enum": ["synthetic", "digits"]},
                         {**DatasetSettings.json_schema(), "required": ["name"]}]}
    return _with_defaults({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "resnetbench matrix",
        "type": "object",
        "additionalProperties": False,
        "required": ["matrix"],
        "properties": {
            "matrix": {
                "type": "object",
                "additionalProperties": False,
                "description": "the axes, expanded into every combination (as GitHub Actions' strategy.matrix)",
                "properties": {
                    **{name: {**axis(values), "description": axis_docs[name]} for name, values in axis_values.items()},
                    "include": {"type": "array", "items": combo,
                                "description": "adds tolerances to the combinations an entry matches, or a new "
                                               "combination when it matches none"},
                    "exclude": {"type": "array", "items": exclude_combo,
                                "description": "drops every combination an entry matches"},
                },
                # Without an axis or an include entry there is nothing to expand.
                "anyOf": [{"required": [name]} for name in (*AXES, "include")],
            },
            "tolerances": {**tolerances, "description": "size and accuracy tolerances for every case"},
            "weights": {**weights, "description": "random (default), torchvision (from torch hub's directory; never "
                                                  "downloaded), a checkpoint path, or {source: train, dataset: digits}"},
            "dataset": {**dataset, "description": "the accuracy inputs (default: synthetic)"},
            "input_size": {"type": "integer", "minimum": 16, "maximum": 1024,
                           "description": "image height and width"},
            "seed": {**seed, "description": "seed of everything random in a run"},
            "threads": {"type": "integer", "minimum": 1, "maximum": 1024,
                        "description": "intra-op threads of every backend (default: the physical cores this process may run on: its CPU affinity, e.g. taskset or a cpuset, caps them)"},
            "allow_slow": {"type": "boolean",
                           "description": "run accuracy and latency of fp16 on PyTorch's CPU backends (slow)"},
            "claims": {"type": "boolean", "description": "also check the guide's claims (default true)"},
            **{key: section.json_schema(backends=list(backends)) for key, section in SECTIONS.items()
               if key not in ("gate", "dataset")},
            "compression_settings": {
                "type": "object",
                "additionalProperties": False,
                "description": "per method: the settings it declares (Method.settings_schema); the backend "
                               "settings compute_units, performance_hint, save_optimized are also accepted "
                               "here, as before backend_settings",
                "properties": _settings_schemas(compressions, archs, settings_of),
            },
            "backend_settings": {
                "type": "object",
                "additionalProperties": False,
                "description": "per backend: the settings it declares (Backend.settings_schema)",
                "properties": _backend_settings_schemas(backends, backend_settings_of),
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
            "gate": GateSettings.json_schema(),
        },
    })


def _with_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """Each key's default, shown in the schema (editors, ``resnetbench schema``, the docs' matrix
    reference) from the one place that defines it: the sections' classes (settings.py, which
    put them in their own schemas), ``TRAIN_DEFAULTS`` and ``Config``'s fields."""
    props = schema["properties"]
    weights = props["weights"]["oneOf"][1]["properties"]
    for key, value in TRAIN_DEFAULTS.items():
        weights[key]["default"] = value
    for item in fields(Config):
        if item.name in props and not isinstance(item.default, type(MISSING)) and item.default is not None:
            props[item.name]["default"] = item.default
    props["weights"]["default"] = "random"
    props["dataset"]["default"] = "synthetic"
    for axis, value in AXIS_DEFAULTS.items():
        if value is not None:
            props["matrix"]["properties"][axis]["default"] = [value]
    return schema


@dataclass(frozen=True)
class Config:
    """A validated matrix file: the raw axes plus settings with defaults filled in."""

    path: Path
    matrix: dict[str, Any]
    tolerances: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=lambda: {"source": "random", "seed": 0})
    dataset: DatasetSettings = field(default_factory=DatasetSettings)
    input_size: int = 224
    seed: int = 0
    threads: int | None = None
    allow_slow: bool = False
    claims: bool = True
    latency: LatencySettings = field(default_factory=LatencySettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    compression_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    architectures: dict[str, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    compressions: dict[str, str] = field(default_factory=dict)
    gate: GateSettings = field(default_factory=GateSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)  # --isolate's per-test limits (isolation.py)
    tuning: TuningSettings = field(default_factory=TuningSettings)
    deployment: DeploymentSettings | None = None  # None: cold start and memory are not measured
    profile: ProfileSettings | None = None  # None: latency cases are not profiled
    scenarios: ScenarioSettings | None = None  # None: LoadGen's scenarios are not run


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


def _duplicate_key(node: yaml.Node | None, visited: set[int] | None = None) -> tuple[str, int, int] | None:
    """The first key written twice in one mapping: (key, first line, second line).

    PyYAML keeps the last value silently, so an axis written twice would lose its first list.
    A node that aliases reach many times is looked at once.
    """
    visited = set() if visited is None else visited
    if node is None or id(node) in visited:
        return None
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                ident = (k.tag, k.value)
                if ident in seen:
                    return k.value, seen[ident], k.start_mark.line + 1
                seen[ident] = k.start_mark.line + 1
            found = _duplicate_key(v, visited)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, visited)
            if found:
                return found
    return None


def _check_node_graph(path: Path, root: yaml.Node) -> None:
    """Refuse, before anything walks the data, a YAML tree that is absurd once its aliases are
    expanded: too many nodes (an alias bomb: 7 levels of 10-way aliases are 10^7 nodes in a
    474-byte file), too deep, a list too long, or an alias to a node that contains it.

    Linear in the nodes as written: the expanded size of each node is computed once.
    """
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()

    def line(node: yaml.Node) -> int:
        return node.start_mark.line + 1

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in expanded:
            return expanded[key]
        if key in open_nodes:
            raise ConfigError(f"{path}:{line(node)}: an alias refers to a mapping or list that contains it "
                              f"(a structure without end); a matrix cannot be recursive.")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{path}:{line(node)}: nested more than {MAX_YAML_DEPTH} levels deep; "
                              f"a matrix needs at most six.")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
            if len(children) > MAX_LIST_ITEMS:
                raise ConfigError(f"{path}:{line(node)}: a list of {len(children):,} items; a matrix list "
                                  f"may have at most {MAX_LIST_ITEMS:,}.")
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
            if len(node.value) > MAX_LIST_ITEMS:
                raise ConfigError(f"{path}:{line(node)}: a mapping of {len(node.value):,} keys; a matrix mapping "
                                  f"may have at most {MAX_LIST_ITEMS:,}.")
        open_nodes.add(key)
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_NODES:
                raise ConfigError(
                    f"{path}:{line(node)}: this part of the file expands to more than {MAX_YAML_NODES:,} "
                    f"values once its YAML aliases (*name) are expanded (an alias bomb?); a whole matrix "
                    f"needs a few hundred. Write the values out, or alias less.")
        open_nodes.discard(key)
        expanded[key] = total
        return total

    size(root, 0)


def _non_finite(data: Any, trail: tuple[Any, ...] = (), visited: set[int] | None = None) -> tuple[list[Any], float] | None:
    """The first float that is NaN or infinite (YAML's .nan, .inf), and where: jsonschema lets
    NaN through every minimum and maximum."""
    visited = set() if visited is None else visited
    if isinstance(data, float):
        return None if math.isfinite(data) else (list(trail), data)
    if isinstance(data, (dict, list)):
        if id(data) in visited:
            return None
        visited.add(id(data))
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, value in items:
            found = _non_finite(value, (*trail, key), visited)
            if found:
                return found
    return None




def _where(path: list[Any]) -> str:
    out = ""
    for p in path:
        key = str(p)
        if not key.isprintable():  # a key with a newline or control character stays on one line, visible
            key = repr(key)
        out += f"[{p}]" if isinstance(p, int) else (f".{key}" if out else key)
    return out or "top level"


def _suggest(value: Any, allowed: list[Any]) -> str:
    if isinstance(value, (dict, list)) or len(str(value)) > 100:
        return ""
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
        msg = f"unknown key {shown(key)} {place}. Allowed keys: {allowed_text}.{_suggest(key, allowed)}"
        if isinstance(key, bool):
            msg += " (YAML reads a bare on/off/yes/no as a boolean; quote the key.)"
    elif validator == "enum":
        allowed = list(schema["enum"])
        msg = (
            f"{where}: {shown(error.instance)} is not allowed. Allowed values: "
            f"{', '.join(map(str, allowed))}.{_suggest(error.instance, allowed)}"
        )
    elif validator == "type":
        expected = schema["type"]
        got = _yaml_type(error.instance)
        if error.instance is not None:
            got += f" {shown(error.instance)}"
        msg = f"{where}: expected {_article(expected)}, got {got}."
        scalar = isinstance(error.instance, str | int | float) and not isinstance(error.instance, bool)
        if expected == "array" and scalar and len(str(error.instance)) <= 60:
            msg += f" Write a list, e.g. [{error.instance}]."
    elif validator in ("minimum", "exclusiveMinimum"):
        msg = f"{where}: {shown(error.instance)} is too small; it must be {'>=' if validator == 'minimum' else '>'} {error.validator_value}."
    elif validator in ("maximum", "exclusiveMaximum"):
        op = "<=" if validator == "maximum" else "<"
        msg = f"{where}: {shown(error.instance)} is too large; it must be {op} {error.validator_value}."
    elif validator == "minItems":
        allowed = schema.get("items", {}).get("enum")
        hint = f" Allowed values: {', '.join(map(str, allowed))}." if allowed else ""
        msg = f"{where}: the axis is empty; list at least one value.{hint}"
    elif validator == "uniqueItems":
        value, index = _first_repeat(error.instance)
        repeat = _node_at(root, [*path, index])
        if repeat is not None:
            node = repeat
        msg = f"{where}: {shown(value)} appears more than once; each value may appear once."
    elif validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        msg = f"{where}: missing the required key {', '.join(map(repr, missing))}."
    elif validator == "anyOf" and path == ["matrix"]:
        msg = (
            f"matrix: names no axis and no include entry, so there is nothing to run. "
            f"List at least one of: {', '.join(AXES)}, include."
        )
    elif validator == "maxProperties" and error.validator_value == 0:
        msg = f"{where}: {schema.get('description', 'this takes no settings')}; remove it."
    elif validator == "minProperties":
        msg = f"{where}: an empty entry matches every case; name at least one axis."
    elif validator == "pattern" and error.validator_value == RECIPE_NAME:
        msg = (f"{where}: {shown(error.instance)} is not a recipe name (lower-case letters, digits and _ . + -; "
               f"`resnetbench recipes` lists each backend's).")
    elif validator == "pattern":
        msg = f"{where}: {shown(error.instance)} must look like 'package.module:function' (or ':Class', ':OBJECT')."
    elif validator == "oneOf":
        msg = f"{where}: {shown(error.instance)} is not a valid value here ({_oneof_hint(path)})."
    else:
        msg = f"{where}: {error.message[:200]}."
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
    root, data = _parse(path, _read_text(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least a 'matrix:' mapping.")
    first = root.start_mark.line + 1 if root is not None else 1
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:{first}: expected a mapping with a 'matrix:' key, got {_yaml_type(data)}.")
    duplicate = _duplicate_key(root)
    if duplicate:
        key, line1, line2 = duplicate
        raise ConfigError(
            f"{path}:{line2}: key {shown(key)} appears twice in one mapping (first on line {line1}); "
            f"YAML would keep only the last one. Merge the two entries."
        )
    bad_number = _non_finite(data)
    if bad_number:
        trail, value = bad_number
        spelled = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        raise ConfigError(f"{_line(path, root, trail)}: {_where(trail)}: {spelled} is not a finite number; "
                          f"write a number such as 0.5.")
    _register_import_paths(path, data, root)
    known_archs = None
    if archs is not None:
        declared = data.get("architectures")
        extra = tuple(declared) if isinstance(declared, dict) else ()
        known_archs = tuple(archs) + tuple(a for a in extra if a not in archs)
    methods, backends = data.get("compression_settings"), data.get("backend_settings")
    schema = json_schema(known_archs, settings_of=set(methods) if isinstance(methods, dict) else set(),
                         backend_settings_of=set(backends) if isinstance(backends, dict) else set())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        msg, line = _describe(_best_error(errors), root)
        more = f" ({len(errors) - 1} more problem(s) after this one.)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {msg}{more}")
    return _normalise(path, data, root)


def _read_text(path: Path) -> str:
    """The matrix file's text: refused when it is not a readable file, above MAX_MATRIX_BYTES
    (before anything parses it), or not UTF-8."""
    try:
        with path.open("rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_MATRIX_BYTES:
                raise ConfigError(f"{path}: {info.st_size:,} bytes is too large for a matrix file (at most "
                                  f"{MAX_MATRIX_BYTES:,}); refused before parsing it.")
            raw = fh.read(MAX_MATRIX_BYTES + 1)  # a pipe or a device has no size to ask
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such matrix file.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a matrix file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the matrix file: {exc.strerror or exc}.") from None
    if len(raw) > MAX_MATRIX_BYTES:
        raise ConfigError(f"{path}: more than {MAX_MATRIX_BYTES:,} bytes is too large for a matrix file; "
                          f"refused before parsing it.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"save the matrix file as UTF-8.") from None


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the data, with PyYAML's safe loader only (no
    Python tags). The tree is checked (``_check_node_graph``) before the data is built."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters already
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_node_graph(path, root)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError(f"{path}:{line}: malformed YAML: the character {ord(char):#06x} is not allowed "
                          f"in a YAML file ({exc.reason}).") from None
    except yaml.YAMLError as exc:
        text_of = " ".join(str(exc).split())
        raise ConfigError(f"{path}: malformed YAML: {text_of[:200]}.") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read (more than {MAX_YAML_DEPTH} levels make no "
                          f"matrix).") from None
    finally:
        if loader is not None:
            loader.dispose()


def _register_import_paths(path: Path, data: dict[str, Any], root: yaml.Node | None) -> None:
    """Register the matrix's ``name: "pkg.mod:attr"`` extensions; an import that fails names its line.

    The target is the user's code: whatever importing it raises is reported, not only
    ImportError, and a failed name is forgotten again. A built-in name cannot be redefined.
    """
    for key, registry in _registries().items():
        declared = data.get(key)
        if not isinstance(declared, dict):
            continue  # the schema says what is wrong with it
        for name, target in declared.items():
            if not isinstance(name, str) or not isinstance(target, str) or not IMPORT_PATH.match(target):
                continue  # the schema says what is wrong with it
            where = f"{_line(path, root, [key, name])}: {key}.{name}"
            if not EXTENSION_NAME.match(name):
                raise ConfigError(f"{where}: {name!r} cannot be a name: it becomes part of case ids and of file "
                                  "names in the cache, so use letters, digits, '_', '.', '+' and '-', starting "
                                  "with a letter or digit (no '/', no spaces).")
            if name in registry._builtin:
                raise ConfigError(f"{where}: {name!r} is a built-in {registry.kind}; give yours another name.")
            try:
                registry.add_target(name, target)
            except RegistryError as exc:
                raise ConfigError(f"{where}: {exc}.") from None
            except Exception as exc:  # the module's own code failed, or the object is of the wrong kind
                registry.unregister(name)
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise ConfigError(f"{where}: {target!r} failed: {type(exc).__name__}: {first}.") from None


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """One sentence for a YAML syntax error: where it was found, and where the construct began."""
    mark = exc.problem_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    problem = " ".join((exc.problem or "unreadable YAML").split())
    tag = re.match(r"could not determine a constructor for the tag '(.*)'$", problem)
    if tag:
        written = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return (f"{path}{line}: unknown YAML tag {shown(written)}: a matrix is plain YAML (no tags that "
                f"build Python objects); remove the tag.")
    if "found unhashable key" in problem:
        return f"{path}{line}: a mapping key must be a plain value, not a list or a mapping."
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
        bare = isinstance(data.get("weights"), str)
        problem = _weights_file_problem(wpath, weights["path"], bare)
        if problem:
            where = _line(path, root, ["weights"] if bare else ["weights", "path"])
            raise ConfigError(f"{where}: weights: {problem}")
        weights = {**weights, "path": str(wpath)}
    if weights["source"] == "train":
        # Trained at the size the matrix evaluates at: a model trained on 32x32 digits is at
        # chance on 64x64 ones (measured: fp32 top-1 9.4% on 10 classes, undecidable).
        weights = {**TRAIN_DEFAULTS, **weights, "size": data.get("input_size", 224)}
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
        folders = [Path(dataset[key]) for key in ("path", "calibration") if dataset.get(key)]
        for key in ("path", "calibration"):
            problem = imagefolder_problem(Path(dataset[key])) if dataset.get(key) else None
            if problem:
                raise ConfigError(f"{_line(path, root, ['dataset', key])}: dataset.{key}: {problem}")
        if dataset.get("labels"):
            classes = 10 if weights["source"] == "train" else 1000  # the head weights.num_classes_for makes
            problem = labels_problem(Path(dataset["labels"]), folders, classes)
            if problem:
                raise ConfigError(f"{_line(path, root, ['dataset', 'labels'])}: dataset.labels: {problem}")
        shortfall = _calibration_images_problem(dataset, data)
        if shortfall:
            key, problem = shortfall
            raise ConfigError(f"{_line(path, root, ['dataset', key])}: dataset.{key}: {problem}")
    kwargs["dataset"] = DatasetSettings.from_mapping(dataset)
    cache_dir = (data.get("cache") or {}).get("dir")
    if cache_dir and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise ConfigError(f"{_line(path, root, ['cache', 'dir'])}: cache.dir: {cache_dir} is not a directory; the artifact "
                          f"cache needs a directory.")
    for key in ("tolerances", "input_size", "seed", "threads", "allow_slow", "claims",
                "compression_settings", "backend_settings", *EXTENSION_KEYS):
        if key in data:
            kwargs[key] = data[key]
    # The typed sections; profile, deployment and scenarios are measured only when the matrix has them.
    for key in ("latency", "gate", "tuning", "limits", "cache"):
        kwargs[key] = SECTIONS[key].from_mapping(data.get(key))
    for key in ("profile", "deployment", "scenarios"):
        if key in data:
            kwargs[key] = SECTIONS[key].from_mapping(data[key])
    latency = kwargs["latency"]
    if latency.blocks > latency.pairs:
        raise ConfigError(f"{_line(path, root, ['latency'])}: latency: blocks ({latency.blocks}) cannot exceed pairs "
                          f"({latency.pairs}): each block needs at least one pair.")
    return Config(**kwargs)


# --------------------------------------------------------------------------- files a matrix names
# Checked when the matrix is loaded, so `resnetbench validate` and `pytest --matrix` refuse
# them before anything runs, without torch (validate imports none) and without unpickling.

def torchvision_weights_problem(arch: str) -> str | None:
    """Why ``weights: torchvision`` cannot give ``arch`` its weights here; None when it can (or
    when it cannot be told without torch: an architecture torchvision does not name).

    resnetbench never downloads (weights.py): torchvision's file must already be in torch
    hub's checkpoint directory, named ``<arch>-<hash>.pth`` (the directory torch.hub.get_dir
    resolves from TORCH_HOME or XDG_CACHE_HOME, found here without importing torch).
    """
    if arch not in BUILTIN_ARCHS:
        return None
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    checkpoints = Path(os.path.expanduser(home)) / "hub" / "checkpoints"
    if any(checkpoints.glob(f"{arch}-*.pth")):
        return None
    return (f"torchvision's pretrained {arch} weights are not on this machine (no {checkpoints}/{arch}-*.pth), "
            f"and resnetbench does not download: fetch them where there is network "
            f"(torchvision.models.{arch}(weights='DEFAULT') stores them there) and copy them here, set TORCH_HOME, "
            f"or use weights: {{source: path, path: FILE}}.")


def _weights_file_problem(resolved: Path, written: str, bare: bool) -> str | None:
    """What is wrong with the checkpoint a matrix's ``weights`` names; None when it looks loadable."""
    if not resolved.exists():
        if bare:  # `weights: torchvison` is read as a path: say so, and what it was probably meant to be
            return (f"{shown(written)} is neither random nor torchvision, so it names a checkpoint file, "
                    f"and there is no file at {resolved.absolute()}.{_suggest(written, ['random', 'torchvision'])}")
        return f"no checkpoint file at {resolved.absolute()}."
    problem = checkpoint_problem(resolved)
    return f"checkpoint {resolved} {problem}" if problem else None


def _calibrating_methods(matrix: dict[str, Any]) -> list[str]:
    """The compression methods of the matrix's cases (after exclude and include) that calibrate."""
    found = []
    for name in dict.fromkeys(combo["compression"] for combo in expand_combinations(matrix)):
        try:
            if COMPRESSIONS.get(name).calibrates:
                found.append(name)
        except Exception:  # a broken plugin fails where a matrix runs it, not here
            continue
    return found


def _calibration_samples(name: str, written: dict[str, Any]) -> int | None:
    """The calibration images a method takes (``build.context_for``: its setting, default 64)."""
    try:
        value = COMPRESSIONS.get(name).settings_for(written).get("calibration_samples", CALIBRATION_SAMPLES)
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _calibration_images_problem(dataset: dict[str, Any], data: dict[str, Any]) -> tuple[str, str] | None:
    """(the dataset key to point at, what is wrong) when an image folder cannot supply both the
    evaluation images and, for every calibrating case, calibration images that are not among
    them (``data.calibration_set``); None when it can.

    The evaluation takes ``dataset.samples`` images, or every image when that is not set; a
    calibrating method then takes ``calibration_samples`` of the others, or of the
    ``dataset.calibration`` folder. The largest ``calibration_samples`` of the methods decides.
    """
    settings = data.get("compression_settings") or {}
    wanted = [(m, n) for m in _calibrating_methods(data["matrix"])
              if (n := _calibration_samples(m, settings.get(m) or {})) is not None]
    if not wanted:
        return None
    method, m = max(wanted, key=lambda item: item[1])
    setting = f"compression_settings.{method}.calibration_samples"
    written = "calibration_samples" in (settings.get(method) or {})
    cal_text = f"calibration {m} ({setting if written else f'the default of {setting}'})"
    too_few = f"too few for compression {method!r}, which calibrates on images kept apart from the evaluation ones"
    separate = dataset.get("calibration")
    if separate and Path(separate).resolve() != Path(dataset["path"]).resolve():
        found, whole = count_images(Path(separate), m)
        if not whole or found >= m:
            return None
        return "calibration", (f"{separate} has {found} images, too few for compression {method!r}: {cal_text} "
                               f"needed, {found} found. Lower {setting} to at most {found}, or add {m - found} "
                               f"image{'s' if m - found > 1 else ''} to the folder.")
    folder, samples = dataset["path"], dataset.get("samples")
    found, whole = count_images(Path(folder), None if samples is None else samples + m)
    if samples is not None:
        if not whole or found >= samples + m:
            return None
        eval_text = f"evaluation {samples} (dataset.samples)"
        need = samples + m
        advice = (f"Lower dataset.samples or {setting} so that together they are at most {found}, add "
                  f"{need - found} image{'s' if need - found > 1 else ''}, or name a separate calibration folder "
                  f"with dataset.calibration.")
        return "samples", (f"{folder} has {found} images, {too_few}: {eval_text} + {cal_text} = {need} images "
                           f"needed, {found} found. {advice}")
    # dataset.samples is not set: the evaluation takes every image and leaves none.
    if found > m:
        example = f" (e.g. samples: {found - m})"
    elif found >= 2:
        example = f" (e.g. samples: {(found + 1) // 2}, calibration_samples: {found // 2})"
    else:
        example = ""
    advice = (f"Set dataset.samples and {setting} to at most {found} together{example}, add images, or name a "
              f"separate calibration folder with dataset.calibration.")
    if not whole:  # past the scan budget: only a lower bound on the images
        return "path", (f"{folder}: the evaluation takes every image (dataset.samples is not set), leaving none: "
                        f"{too_few}. Set dataset.samples and {setting} to at most the folder's images together, "
                        f"or name a separate calibration folder with dataset.calibration.")
    return "path", (f"{folder} has {found} images, {too_few}: evaluation {found} (every image: dataset.samples is "
                    f"not set) + {cal_text} = {found + m} images needed, {found} found. {advice}")


# --------------------------------------------------------------------------- axes

AXIS_DEFAULTS: dict[str, Any] = {
    "dtype": "fp32",
    "compression": DEFAULT_COMPRESSION,
    "backend": DEFAULT_BACKEND,
    "batch": 1,
}


def _matches(entry: dict[str, Any], combo: dict[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in entry.items() if k in AXES)


def expand_combinations(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """Axis combinations after exclude and include, each with its include overrides."""
    axes = {axis: list(matrix.get(axis, [AXIS_DEFAULTS.get(axis)])) for axis in AXES}
    if axes["arch"] == [None]:
        axes["arch"] = [DEFAULT_ARCH]
    if any(axis in matrix for axis in AXES):
        combos = [dict(zip(AXES, values, strict=True)) for values in itertools.product(*axes.values())]
    else:
        combos = []  # include entries only: no base product (GitHub Actions does the same)
    for entry in matrix.get("exclude", []):
        combos = [c for c in combos if not _matches(entry, c)]
    for entry in matrix.get("include", []):
        matched = [c for c in combos if _matches(entry, c)]
        overrides = entry.get("tolerances", {})
        if matched:
            for combo in matched:
                combo.setdefault("tolerances", {}).update(overrides)
        else:
            new = {**{"arch": axes["arch"][0]}, **AXIS_DEFAULTS}
            new.update({k: v for k, v in entry.items() if k in AXES})
            new["tolerances"] = dict(overrides)
            combos.append(new)
    return combos
