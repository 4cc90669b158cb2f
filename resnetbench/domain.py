"""The domain vocabulary every layer shares, defined once: the matrix axes, a ``Case``, what a
compression ``Method`` declares, and the gate's default threshold.

A leaf: imports nothing of resnetbench at run time (type names only) and nothing heavy, since
``validate`` and ``compare`` load it without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from resnetbench.cache import ArtifactCache
    from resnetbench.config import Config

# The matrix axes every case has, in case-id order.
AXES = ("arch", "dtype", "compression", "backend", "batch")

# 10% for every comparison, within one job or against a stored baseline: at 5% the
# case/reference ratio's own run-to-run movement (1.3-2% here) left A/A false alarms at
# about 1 in 100 in gate-check, the target's limit (docs/gate.md).
DEFAULT_THRESHOLD = 0.10

# How far an artifact's bytes may be from its size formula, unless the matrix says otherwise.
DEFAULT_SIZE_TOLERANCE = {"relative": 0.02, "absolute_bytes": 256 * 1024}


@dataclass(frozen=True)
class Case:
    """One combination of the matrix: the id is the key everywhere (tests, results, cache)."""

    arch: str
    dtype: str
    compression: str
    backend: str
    batch: int
    tolerances: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    size_tolerance: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_SIZE_TOLERANCE), compare=False, hash=False
    )
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.dtype}-{self.compression}-{self.backend}-b{self.batch}"

    def axes(self) -> dict[str, Any]:
        return {axis: getattr(self, axis) for axis in AXES}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.axes(), "tolerances": self.tolerances, "settings": self.settings}


FLOATS = frozenset({"fp32", "fp16", "bf16"})
# The quantization schemes backends implement (``Backend.quantization``).
INT8_DYNAMIC = "int8-dynamic"
INT8_STATIC = "int8-static"
# Static int8 that reverts its most sensitive layers to float until a top-1 budget holds.
INT8_BUDGET = "int8-static-budget"


@dataclass
class MethodContext:
    """What a model transform may use besides the model: typed, no string keys."""

    config: Config
    cache: ArtifactCache
    settings: dict[str, Any]
    # The fp32 uncompressed model of another architecture with the matrix's weights (a teacher).
    base_model: Callable[[str], nn.Module]


Prepare = Callable[["nn.Module", "Case", MethodContext], "tuple[nn.Module, dict[str, Any]]"]


@dataclass(frozen=True)
class Method:
    """A compression method, declared once in its own module as ``METHOD``."""

    name: str
    dtypes: frozenset[str]
    prepare: Prepare | None = None  # fp32 model -> transformed fp32 model (+ info)
    quantization: str | None = None  # a scheme each backend implements itself
    defaults: dict[str, Any] = field(default_factory=dict)  # settings; the matrix's compression_settings override
    tolerances: dict[str, float] = field(default_factory=dict)  # default accuracy tolerances of its cases
    uses_dataset: bool = False  # its result depends on the matrix's dataset (calibration, fine-tuning)
    removes_parameters: bool = False  # the model has fewer parameters than the architecture's closed form
    accuracy_reference: str = "self"  # "self": the uncompressed model; "teacher": settings["teacher"]
    # The settings it reads (the matrix's ``compression_settings.<name>``) as JSON Schema
    # properties, so ``resnetbench validate`` refuses an unknown key or a value out of range
    # before anything runs. ``{"x-names": "architectures"}`` in a property stands for the
    # registry's names (the validator fills them in). None: not declared (any mapping goes).
    settings_schema: dict[str, Any] | None = None

    @property
    def calibrates(self) -> bool:
        """Needs calibration images (kept apart from the evaluation images)."""
        return self.quantization in (INT8_STATIC, INT8_BUDGET)

    @property
    def validates(self) -> bool:
        """Needs labelled validation images (apart from calibration and evaluation images)."""
        return self.quantization == INT8_BUDGET

    def unsupported(self, dtype: str) -> str | None:
        """Why this method and a dtype do not go together; None when they do."""
        if dtype == "int8" and self.quantization is None:
            return "int8 needs a quantization method: use compression dynamic or static with dtype int8"
        if dtype not in self.dtypes:
            if self.dtypes == {"int8"}:
                return f"{self.name} quantization produces int8 weights; it pairs with dtype int8, not {dtype}"
            return f"{self.name} is not defined for dtype {dtype} (allowed: {', '.join(sorted(self.dtypes))})"
        return None

    def settings_for(self, user: dict[str, Any]) -> dict[str, Any]:
        """The method's defaults overlaid with the matrix's settings."""
        return {**self.defaults, **user}
