"""Compression methods, one module each, in a plain registry.

A method transforms the fp32 PyTorch model (``prepare``) before any backend sees it
(pruning, distillation), or declares that backends quantize their own artifact
(``dynamic``/``static``: each backend has its own int8 path). Capabilities say which
dtype a method produces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from resnetbench.matrix import Case


@dataclass(frozen=True)
class Method:
    """A compression method: the dtypes it goes with and its model transform, if any."""

    name: str
    dtypes: frozenset[str]
    prepare: Callable[[nn.Module, Case, dict[str, Any]], tuple[nn.Module, dict[str, Any]]] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def unsupported(self, case: Case) -> str | None:
        if case.dtype not in self.dtypes:
            if self.dtypes == {"int8"}:
                return f"{self.name} quantization produces int8 weights; it pairs with dtype int8, not {case.dtype}"
            return f"{self.name} is not defined for dtype {case.dtype} (allowed: {', '.join(sorted(self.dtypes))})"
        return None


def _identity(model: nn.Module, case: Case, settings: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    return model, {}


def _registry() -> dict[str, Method]:
    from resnetbench.compress import distill, prune_channels, prune_unstructured

    floats = frozenset({"fp32", "fp16", "bf16"})
    return {
        "none": Method("none", floats, _identity),
        "dynamic": Method("dynamic", frozenset({"int8"}), None, {}),
        "static": Method("static", frozenset({"int8"}), None, {"calibration_samples": 64}),
        "prune-l1-unstructured": Method(
            "prune-l1-unstructured", floats, prune_unstructured.prepare, prune_unstructured.DEFAULTS
        ),
        "prune-channels": Method("prune-channels", floats, prune_channels.prepare, prune_channels.DEFAULTS),
        "distill": Method("distill", floats, distill.prepare, distill.DEFAULTS),
    }


_METHODS: dict[str, Method] | None = None


def methods() -> dict[str, Method]:
    """The registry, built on first use (method modules import heavy libraries)."""
    global _METHODS
    if _METHODS is None:
        _METHODS = _registry()
    return _METHODS


def unsupported_dtype(case: Case) -> str | None:
    """Why the case's dtype and compression do not go together; None when they do."""
    if case.dtype == "int8" and case.compression not in ("dynamic", "static"):
        return "int8 needs a quantization method: use compression dynamic or static with dtype int8"
    return methods()[case.compression].unsupported(case)
