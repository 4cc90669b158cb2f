"""The one small interface every backend implements, and what they share.

A backend owns everything backend-specific: which dtypes and quantization schemes it
runs (its capability table), how a model is cast or quantized for it (``prepare_model``),
its artifact files and their int8 storage layout (``int8_layout``, for the size
formula), and the libraries its results depend on (``requires``). Nothing outside
``backends/`` switches on a backend's name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import time
import warnings
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from resnetbench.backends.size import Inventory, float_formula, int8_formula
from resnetbench.compress import get_method
from resnetbench.compress.base import Method
from resnetbench.formulas import QuantLayout, SizeFormula
from resnetbench.matrix import Case

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Runner(Protocol):
    """A loaded artifact: ``prepare`` moves inputs to the backend once, ``run`` is what gets timed."""

    def prepare(self, x: torch.Tensor) -> Any: ...

    def run(self, native: Any) -> Any: ...

    def to_logits(self, out: Any) -> torch.Tensor: ...


@dataclass(frozen=True)
class Recipe:
    """One way an expert would run an artifact: load-time options, applied by the backend's ``load``.

    A backend lists its recipes for a case (``Backend.recipes``), its long-standing way
    first; ``tuning.py`` times them on the machine and keeps the fastest that computes the
    same outputs. Options that would need another artifact are not recipes: each would
    cost a second export (or compilation) per case.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


DEFAULT_RECIPE = Recipe("default", {}, "the backend's only way")


@dataclass
class BuildContext:
    """What a backend may need besides the model: settings, threads, calibration data, the recipe to load."""

    threads: int
    input_size: int
    calibration: torch.Tensor | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    calibration_source: str = ""  # where the calibration images came from (never the evaluation set)
    # Labelled images and labels an accuracy budget is checked on (int8-budget; data.validation_set).
    validation: tuple[torch.Tensor, torch.Tensor] | None = None
    validation_source: str = ""
    recipe: Recipe = DEFAULT_RECIPE


@dataclass
class Exported:
    """Artifact files in an entry dir and what making them cost."""

    files: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base: declares capabilities; subclasses implement ``export`` and ``load``.

    Every model transform (pruning, distillation: a ``Method`` with ``prepare``) reaches
    every backend as an fp32 model; a quantization method reaches only the backends that
    implement its scheme (``quantization``).
    """

    name: ClassVar[str]
    dtypes: ClassVar[frozenset[str]] = frozenset({"fp32"})
    # The int8 schemes (compress/base.py) this backend implements with its own toolchain.
    quantization: ClassVar[frozenset[str]] = frozenset()
    # Import names of the packages it needs; their versions are recorded with every run.
    requires: ClassVar[tuple[str, ...]] = ()
    device: ClassVar[str] = "cpu"
    # dtype -> why it runs but is too slow to be worth it unless the matrix opts in
    slow: ClassVar[dict[str, str]] = {}
    artifact_kind: ClassVar[str] = ""
    # Builds an engine for one input shape: the batch is part of the artifact's cache key.
    fixed_batch: ClassVar[bool] = False
    # Runs a PyTorch module in the process (the gate's slowdown injector computes on
    # PyTorch's thread pool for these; a subclass inherits this, whatever its name).
    runs_torch_module: ClassVar[bool] = False
    # Its artifact is weights for a PyTorch module (a state_dict): loading needs the module
    # built first (``build.load_deployed``). Self-contained artifacts (ONNX, IR, TorchScript) do not.
    loads_into_module: ClassVar[bool] = False
    # The settings a matrix may give this backend (``backend_settings: {name: {...}}``): key ->
    # JSON Schema with a "description". Read from ``ctx.settings``. None: it reads none.
    settings_schema: ClassVar[dict[str, Any] | None] = None

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot build or run ``case``; None when it can."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{self.name}: the Python package {module!r} is not installed (pip install -e '.[{self.extra_name()}]')"
        if self.device == "cuda" and not torch.cuda.is_available():
            return f"{self.name}: needs a CUDA GPU; none is available on this machine"
        if case.dtype not in self.dtypes:
            return f"{self.name} does not run {case.dtype} here (supports {', '.join(sorted(self.dtypes))})"
        method = get_method(case.compression)
        if method.quantization is not None and method.quantization not in self.quantization:
            offers = ", ".join(sorted(self.quantization)) or "none"
            return f"{self.name} has no {method.quantization} quantization path for {method.name} (implements: {offers})"
        return None

    def prepare_model(self, model: nn.Module, case: Case, method: Method, ctx: BuildContext, notes: list[str],
                      artifact_cached: bool) -> tuple[nn.Module, dict[str, Any]]:
        """The module ``export`` receives (already a private copy). Backends that convert the
        fp32 module themselves (ONNX-based ones) take it as it is."""
        return model, {}

    def recipes(self, case: Case) -> tuple[Recipe, ...]:
        """The ways to run ``case``'s artifact that tuning chooses from; the first is the default."""
        return (DEFAULT_RECIPE,)

    def profile(self, runner: Runner, x: torch.Tensor, *, model: nn.Module, entry: Path, meta: dict[str, Any],
                threads: int, recipe: Recipe, calls: int) -> dict[str, Any] | None:
        """Per-unit times of ``runner`` on ``x`` from this backend's own profiler
        (``backends/profile.py``), or None when the backend has none wired in. ``model`` is
        the case's model as exported; ``meta`` the artifact's metadata (what its export recorded)."""
        return None

    def compute_dtype(self, case: Case) -> str:
        """The arithmetic the case's convolutions run in (its roof, ``roof.py``): the case's dtype by default."""
        return case.dtype

    def int8_layout(self, scheme: str) -> QuantLayout:
        """How this backend's int8 path for ``scheme`` stores a model (for the size formula)."""
        raise NotImplementedError(f"{self.name} declares no int8 storage layout for {scheme}")

    def size_formula(self, inv: Inventory, dtype: str, scheme: str | None,
                     float_layers: Collection[str] = (), per_channel: bool | None = None) -> SizeFormula:
        """The closed-form bytes of this backend's artifact (what the size test expects).

        Default: parameters at the dtype with BatchNorm kept, as state_dicts, ONNX and
        OpenVINO IR store them; int8 (``scheme`` set) through ``int8_layout``, with
        ``float_layers`` in fp32 and ``per_channel`` overriding the layout's (int8-budget). A converter
        that folds BatchNorm away overrides this with ``backends.size.folded_formula``.
        """
        if scheme is not None:
            layout = self.int8_layout(scheme)
            if per_channel is not None and per_channel != layout.per_channel:  # int8-budget's per_channel: false
                layout = dataclasses.replace(layout, per_channel=per_channel,
                                             description=f"{layout.description}; one weight scale per tensor")
            return int8_formula(inv, layout, float_layers)
        return float_formula(inv, dtype)

    def slow_reason(self, case: Case, allow_slow: bool = False) -> str | None:
        """Why running ``case`` would take pathologically long here (its size is still checked)."""
        if case.dtype in self.slow and not allow_slow:
            return f"{self.slow[case.dtype]}; set allow_slow: true in the matrix to run it"
        return None

    def cannot_run_here(self, case: Case) -> str | None:
        """Why this machine can build ``case``'s artifact but not execute it (e.g. a runtime that
        exists only on another OS): accuracy and latency skip with this reason, size still counts."""
        return None

    def setting(self, ctx: BuildContext, key: str) -> Any:
        """The case's value of one of this backend's declared settings, else its declared default."""
        return ctx.settings.get(key, (self.settings_schema or {})[key].get("default"))

    def extra_name(self) -> str:
        return self.name

    def export(self, model: nn.Module, case: Case, out: Path, ctx: BuildContext) -> Exported:
        raise NotImplementedError

    def load_streams(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext,
                     streams: int) -> list[Runner]:
        """``streams`` runners that may run at once from ``streams`` threads, ``ctx.threads`` each.
        By default ``streams`` independent loads (a session, interpreter or module each); a
        runtime with streams of its own (OpenVINO) loads once with that many."""
        return [self.load(model, case, entry, meta, ctx) for _ in range(streams)]

    def load(self, model: nn.Module, case: Case, entry: Path, meta: dict[str, Any], ctx: BuildContext) -> Runner:
        raise NotImplementedError


def is_quantized(case: Case) -> bool:
    """Whether the case's compression is an int8 quantization scheme (not a model transform)."""
    return get_method(case.compression).quantization is not None


def cast_model(model: nn.Module, dtype: str) -> nn.Module:
    """The model at a float dtype (fp32/fp16/bf16); int8 is the quantizers' job."""
    if dtype in TORCH_DTYPES:
        return model.to(TORCH_DTYPES[dtype])
    return model


class Timer:
    """Wall time of a block, in seconds."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def record_warnings(notes: list[str]) -> warnings.catch_warnings:
    """Collect deprecation warnings into notes rather than hiding them."""
    return _Collector(notes)


class _Collector(warnings.catch_warnings):
    def __init__(self, notes: list[str]) -> None:
        super().__init__(record=True)
        self.notes = notes

    def __enter__(self) -> list[warnings.WarningMessage] | None:
        self.log = super().__enter__()
        warnings.simplefilter("always")
        return self.log

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        super().__exit__(exc_type, exc, tb)
        for w in self.log or []:
            if issubclass(w.category, (DeprecationWarning, FutureWarning, UserWarning)):
                text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}"
                if text not in self.notes:
                    self.notes.append(text)


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    """Keep a converter's progress lines and bars (printed to stdout/stderr) out of pytest's output."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def files_bytes(entry: Path, files: list[str]) -> dict[str, int]:
    """Bytes of each artifact file: an artifact's size is all its files."""
    return {f: (entry / f).stat().st_size for f in files}
