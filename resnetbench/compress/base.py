"""What a compression method is: its dtypes, its model transform or quantization scheme, its defaults.

A method either transforms the fp32 PyTorch model before any backend sees it
(``prepare``: pruning, distillation), or names a quantization *scheme* that each backend
implements with its own toolchain (``quantization``: ``"int8-dynamic"`` weights ahead and
activations at run time, ``"int8-static"`` calibrated weights and activations). Backends
declare which schemes they implement, so a method reaches a backend by what it does,
never by its name. No torch at import: the matrix validator reads these declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from resnetbench.cache import ArtifactCache
    from resnetbench.config import Config
    from resnetbench.matrix import Case

FLOATS = frozenset({"fp32", "fp16", "bf16"})
# The quantization schemes backends implement (``Backend.quantization``).
INT8_DYNAMIC = "int8-dynamic"
INT8_STATIC = "int8-static"


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
        return self.quantization == INT8_STATIC

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
