"""Architectures in one registry: torchvision's resnet18..152 built in (the canonical
definitions), plus the ``resnetbench.architectures`` entry-point group, matrix import
paths (``architectures: {name: "pkg.mod:fn"}``) and ``@register_arch``.

A target is a factory ``fn(num_classes: int = 1000) -> nn.Module``. Listing names
imports nothing (no torch, no torchvision).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resnetbench.registry import Registry

BUILTIN_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
# The architecture a matrix gets when it lists none.
DEFAULT_ARCH = BUILTIN_ARCHS[0]

ModelFactory = Callable[..., Any]
ARCHITECTURES: Registry[ModelFactory] = Registry(
    "architecture", "resnetbench.architectures", {name: f"torchvision.models:{name}" for name in BUILTIN_ARCHS}
)


def register_arch(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Register a factory ``fn(num_classes: int) -> nn.Module`` under ``name``.

    Example::

        @register_arch("resnet18-narrow")
        def resnet18_narrow(num_classes: int = 1000) -> nn.Module:
            return torchvision.models.resnet.ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width_per_group=32)
    """

    def add(fn: ModelFactory) -> ModelFactory:
        ARCHITECTURES.register(name, fn)
        return fn

    return add
