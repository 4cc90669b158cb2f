"""From a case to a loaded runner: model -> compression -> backend artifact -> runner.

Everything built here goes through the artifact cache, keyed by what determines it,
so the size, accuracy and latency tests of a case share one build, and a second run
of the same matrix re-exports nothing. A case needs only its id, the config and the
cache: no state is carried over from earlier cases.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetbench import data, tuning
from resnetbench.backends import get_backend
from resnetbench.backends.base import Backend, BuildContext, Recipe, Runner, files_bytes
from resnetbench.backends.size import inventory
from resnetbench.cache import ArtifactCache
from resnetbench.compress import DEFAULT_COMPRESSION, get_method, structure
from resnetbench.compress.base import Method, MethodContext
from resnetbench.config import Config
from resnetbench.environment import library_versions
from resnetbench.matrix import Case
from resnetbench.settings import CALIBRATION_SAMPLES, TuningSettings
from resnetbench.weights import create_model, num_classes_for, weights_id


@dataclass
class Built:
    """A case ready to measure: its torch model, artifact files and a runner."""

    case: Case
    model: nn.Module
    entry: Path
    files: dict[str, int]
    meta: dict[str, Any]
    runner: Runner
    compression_info: dict[str, Any]
    fp32_model: nn.Module
    backend: Backend
    method: Method
    inventory: Any = None
    notes: list[str] = field(default_factory=list)
    conversion: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)  # which recipe runs it and why (tuning.py)


def settings_for(case: Case) -> dict[str, Any]:
    """The compression method's defaults overlaid with the matrix's settings."""
    return get_method(case.compression).settings_for(case.settings)


def context_for(config: Config, case: Case, threads: int) -> BuildContext:
    settings = settings_for(case)
    if not get_method(case.compression).calibrates:
        return BuildContext(threads=threads, input_size=config.input_size, settings=settings)
    cal = data.calibration_set(config.dataset, config.input_size, int(settings.get("calibration_samples", CALIBRATION_SAMPLES)), config.seed)
    if cal.overlap_with_evaluation:
        raise data.DatasetError(f"{cal.source}: {cal.overlap_with_evaluation} calibration images are evaluation images")
    ctx = BuildContext(threads=threads, input_size=config.input_size, calibration=cal.images, settings=settings,
                       calibration_source=cal.source)
    if get_method(case.compression).validates:
        val = data.validation_set(config.dataset, config.input_size, int(settings["validation_samples"]), config.seed)
        assert val.labels is not None  # validation_set only returns labelled sets
        ctx = dataclasses.replace(ctx, validation=(val.images, val.labels), validation_source=val.pipeline)
    return ctx


@cache
def code_version(*modules: str) -> str:
    """A hash of the source of the modules that make an artifact: a code change rebuilds it."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and Path(spec.origin).exists():
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:12]


def base_description(config: Config, arch: str) -> dict[str, Any]:
    return {
        "arch": arch,
        "weights": weights_id(config.weights),
        "input_size": config.input_size,
        "libraries": library_versions(),
    }


def base_model(config: Config, arch: str, cache: ArtifactCache) -> nn.Module:
    """The fp32, uncompressed model with the matrix's weights: a private copy the caller may change.

    Loading or training weights takes seconds and every case of an architecture needs the
    same model, so the first one made in this process is kept (at most one per architecture
    and weights: ~0.6 GB for all five) and copied (0.1 s). Random weights are kept by
    ``build_model`` already.
    """
    if config.weights["source"] == "random":
        return create_model(arch, config.weights, num_classes_for(config.weights), cache)
    key = (arch, weights_id(config.weights), num_classes_for(config.weights), str(cache.root))
    if key not in _BASE_MODELS:
        _BASE_MODELS[key] = create_model(arch, config.weights, num_classes_for(config.weights), cache)
    return copy.deepcopy(_BASE_MODELS[key])


_BASE_MODELS: dict[tuple[str, str, int, str], nn.Module] = {}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compressed_model(config: Config, case: Case, cache: ArtifactCache) -> tuple[nn.Module, dict[str, Any]]:
    """The fp32 model after a model transform (pruning, distillation).

    Cached as tensors and a JSON description of the layers (``compress/structure.py``),
    never as a pickled module: the module is rebuilt from the architecture registry, on a
    fresh build as on a cache hit, so both runs measure the same module. Storing checks
    that the rebuilt module computes bit-identical outputs to the one the method returned.
    """
    method = get_method(case.compression)
    prepare = method.prepare
    if prepare is None:  # no transform: quantization happens in the backend's own int8 path
        return base_model(config, case.arch, cache), {}
    settings = settings_for(case)
    desc = {**base_description(config, case.arch), "compression": case.compression, "settings": settings,
            "dataset": config.dataset.to_dict(), "code": code_version(prepare.__module__),
            "store": f"safetensors+structure/{structure.STRUCTURE_FORMAT}"}
    ctx = MethodContext(config, cache, settings, lambda arch: base_model(config, arch, cache))
    num_classes = num_classes_for(config.weights)

    def build(out: Path) -> dict[str, Any]:
        start = time.perf_counter()
        model, info = prepare(base_model(config, case.arch, cache), case, ctx)
        compress_s = time.perf_counter() - start
        structure.save(model, case.arch, out, num_classes)
        sample = torch.randn(1, 3, config.input_size, config.input_size, generator=torch.Generator().manual_seed(0))
        structure.round_trip(model, structure.load(out), sample)
        return {"info": info, "compress_s": compress_s, "files": [structure.TENSORS_FILE, structure.STRUCTURE_FILE]}

    name = f"{case.arch}-{case.compression}"
    entry, meta = cache.get_or_build("models", name, desc, build)
    try:
        model = structure.load(entry)
    except structure.StructureError as exc:
        if not meta["cached"]:
            raise
        # A signed entry that no longer fits the architecture (its factory changed): made again.
        cache.discard(entry, f"{structure.STRUCTURE_FILE} does not fit {case.arch} as registered now: {exc}")
        entry, meta = cache.get_or_build("models", name, desc, build)
        model = structure.load(entry)
    return model, {**meta["info"], "compress_s": meta["compress_s"], "cached": meta["cached"]}


def artifact_description(config: Config, case: Case, backend: Backend, settings: dict[str, Any]) -> dict[str, Any]:
    """What a case's artifact depends on: its cache key."""
    return {
        **base_description(config, case.arch),
        "compression": case.compression,
        "settings": settings,
        "dtype": case.dtype,
        "backend": case.backend,
        "batch": case.batch if backend.fixed_batch else "dynamic",
        "dataset": config.dataset.to_dict() if get_method(case.compression).uses_dataset else None,
        # The backend's class hierarchy and the modules that make artifacts: a code change rebuilds.
        "code": code_version(*_artifact_modules(backend), "resnetbench.backends.onnx_export",
                             "resnetbench.backends.torch_quantize", "resnetbench.backends.onnx_quantize",
                             *(("resnetbench.backends.onnx_budget",) if get_method(case.compression).validates else ())),
    }


class NotBuiltError(RuntimeError):
    """``load_deployed`` found no cached artifact for the case (its tests build it first)."""


def load_deployed(config: Config, case: Case, cache: ArtifactCache, threads: int, recipe: str) -> Runner:
    """The case's runner from its cached artifact, doing only what a deployment does.

    Loads the artifact file with ``recipe``; builds the PyTorch module only for a backend
    whose artifact is weights for a module (``Backend.loads_into_module``: a state_dict).
    Never exports, quantizes, tunes or builds: a missing artifact is ``NotBuiltError``.
    """
    [runner] = load_streams(config, case, cache, threads, recipe, streams=1)
    return runner


def load_streams(config: Config, case: Case, cache: ArtifactCache, threads: int, recipe: str,
                 streams: int) -> list[Runner]:
    """``streams`` runners of the case's cached artifact that may run at once, ``threads`` each
    (``Backend.load_streams``; LoadGen's system under test, measure/loadgen.py)."""
    backend = get_backend(case.backend)
    recipes = {r.name: r for r in backend.recipes(case)}
    if recipe not in recipes:
        raise NotBuiltError(f"{case.id}: {backend.name} has no recipe {recipe!r} (has: {', '.join(recipes)})")

    def not_built(out: Path) -> dict[str, Any]:
        raise NotBuiltError(f"{case.id}: no cached artifact; run its size, accuracy or latency test first")

    settings = settings_for(case)
    desc = artifact_description(config, case, backend, settings)
    entry, meta = cache.get_or_build("artifacts", f"{case.backend}-{case.id}", desc, not_built)
    model: Any = None
    ctx = BuildContext(threads=threads, input_size=config.input_size, settings=settings)
    if backend.loads_into_module:
        ctx = context_for(config, case, threads)
        fp32, _ = compressed_model(config, case, cache)
        model, _ = backend.prepare_model(fp32, case, get_method(case.compression), ctx, [], True)
    return backend.load_streams(model, case, entry, meta, dataclasses.replace(ctx, recipe=recipes[recipe]), streams)


def build_case(config: Config, case: Case, cache: ArtifactCache, threads: int, tune: bool = True,
               timing_lock: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
               phase: Callable[[str], None] = lambda name: None) -> Built:
    """Make (or fetch from the cache) everything a case's tests need.

    ``tune=False`` loads the backend's default recipe whatever the matrix says (the latency
    reference does: it must not move with tuning). ``timing_lock`` is held while recipes are
    timed (the suite passes ``quiet.exclusive``). ``phase`` is told each phase as it starts
    (``build``, ``export``, ``tuning``: the run's progress lines, progress.py).
    """
    phase("build")
    backend = get_backend(case.backend)
    method = get_method(case.compression)
    ctx = context_for(config, case, threads)
    notes: list[str] = []
    rebuilds_before = len(cache.rebuilds)
    rss_before = _peak_rss_mb()
    model, comp_info = compressed_model(config, case, cache)
    desc = artifact_description(config, case, backend, ctx.settings)
    fp32_model = model
    cached = cache.has("artifacts", f"{case.backend}-{case.id}", desc)
    # Casting and quantizing change modules in place: keep the fp32 model intact.
    model, quant_info = backend.prepare_model(copy.deepcopy(model), case, method, ctx, notes, cached)

    def export(out: Path) -> dict[str, Any]:
        exported = backend.export(model, case, out, ctx)
        return {"files": exported.files, "export_s": exported.seconds, "notes": exported.notes, **exported.extra,
                "torch_quant": quant_info}

    if not cached:
        phase("export")
    entry, meta = cache.get_or_build("artifacts", f"{case.backend}-{case.id}", desc, export)
    if meta.get("torch_quant"):
        # What quantizing cost when the artifact was made (this run may only have rebuilt structure).
        quant_info = {**meta["torch_quant"], "structure_s": quant_info.get("quantize_s")}
    notes.extend(n for n in meta.get("notes", []) if n not in notes)
    # Entries of this case that failed their manifest check and were rebuilt (cache.py): the record says so.
    notes.extend(n for n in cache.rebuilds[rebuilds_before:] if n not in notes)
    with_load = time.perf_counter()
    metas: dict[str, dict[str, Any]] = {}

    def load(recipe: Recipe, private: bool) -> Runner:
        # Each load records its own runtime settings; the chosen recipe's become the entry's.
        own = {**meta, "runtime": dict(meta.get("runtime", {})), "notes": list(meta.get("notes", []))}
        metas[recipe.name] = own
        return backend.load(copy.deepcopy(model) if private else model, case, entry, own,
                            dataclasses.replace(ctx, recipe=recipe))

    sample = torch.randn(case.batch, 3, config.input_size, config.input_size,
                         generator=torch.Generator().manual_seed(config.seed))
    if tune and config.tuning.enabled:
        phase("tuning")
    runner, recipe_choice = tuning.choose(
        case.backend, case.id, backend.recipes(case), config.tuning if tune else TuningSettings(enabled=False), load, sample,
        case.dtype, cache, entry.name, threads, timing_lock)
    meta = metas[recipe_choice["recipe"]]
    meta["runtime"]["recipe"] = recipe_choice["recipe"]
    # What choosing cost this run (0 when the choice came from the cache or there was none to make).
    tuning_s = recipe_choice["cost_s"] if recipe_choice.get("cached") is False else 0.0
    load_s = time.perf_counter() - with_load - tuning_s
    conversion = {
        "export_s": meta.get("export_s"),
        "load_s": load_s,
        "compress_s": comp_info.get("compress_s"),
        "quantize_s": quant_info.get("quantize_s") or meta.get("quantize_s"),
        "compile_s": meta.get("runtime", {}).get("compile_s"),
        "tuning_s": tuning_s,
        "cached": meta["cached"],
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_growth_mb": _peak_rss_mb() - rss_before,
    }
    info = {**comp_info, **quant_info, **{k: v for k, v in meta.items()
                                          if k in ("quantizer", "ops", "calibration_samples", "budget")}}
    if ctx.calibration_source:
        info["calibration_source"] = ctx.calibration_source
    return Built(case, model, entry, files_bytes(entry, meta["files"]), meta, runner, info, fp32_model, backend, method,
                 inventory(fp32_model), notes, conversion, recipe_choice)


def _artifact_modules(backend: object) -> tuple[str, ...]:
    """The modules of a backend's class and its bases (a subclass inherits their export code)."""
    return tuple(dict.fromkeys(k.__module__ for k in type(backend).__mro__ if k.__module__.startswith("resnetbench")
                               or k is type(backend)))


def build_default(arch: str, backend: str, batch: int, input_size: int, cache: ArtifactCache, threads: int,
                  origin: str, dtype: str = "fp32", compression: str = DEFAULT_COMPRESSION, tune: bool = True,
                  recipe: str | None = None) -> Built:
    """A case with every setting at its default (no matrix file; ``origin`` names the caller).

    ``recipe`` loads the artifact with that recipe of the backend, as a matrix pin would.
    """
    config = _default_config(origin, input_size, backend, recipe)
    return build_case(config, Case(arch, dtype, compression, backend, batch), cache, threads, tune=tune)


def load_default_streams(arch: str, backend: str, batch: int, input_size: int, cache: ArtifactCache, threads: int,
                         origin: str, dtype: str, compression: str, recipe: str, streams: int,
                         pinned: str | None = None) -> list[Runner]:
    """``load_streams`` for a case ``build_default`` built (with ``pinned`` as its ``recipe``)."""
    config = _default_config(origin, input_size, backend, pinned)
    return load_streams(config, Case(arch, dtype, compression, backend, batch), cache, threads, recipe, streams)


def _default_config(origin: str, input_size: int, backend: str, recipe: str | None) -> Config:
    config = Config(path=Path(origin), matrix={}, input_size=input_size)
    if recipe is not None:
        config = dataclasses.replace(config, tuning=config.tuning.pinned(backend, recipe))
    return config
