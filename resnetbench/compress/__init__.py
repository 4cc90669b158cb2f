"""Compression methods, one module each, in one registry.

Built-ins, the ``resnetbench.compressions`` entry-point group and matrix import paths
(``compressions: {name: "pkg.mod:METHOD"}``) feed it; a target is a ``Method``
(``compress/base.py``). Listing names imports no method module.
"""

from __future__ import annotations

from resnetbench.compress.base import Method
from resnetbench.registry import Registry

# The compression a matrix gets when it lists none: the identity.
DEFAULT_COMPRESSION = "none"


def _method(obj: object) -> Method:
    if not isinstance(obj, Method):
        raise TypeError(f"a compression method must be a resnetbench.compress.base.Method, got {type(obj).__name__}")
    return obj


COMPRESSIONS: Registry[Method] = Registry("compression method", "resnetbench.compressions", {
    "none": "resnetbench.compress.identity:METHOD",
    "dynamic": "resnetbench.compress.dynamic:METHOD",
    "static": "resnetbench.compress.static:METHOD",
    "prune-l1-unstructured": "resnetbench.compress.prune_unstructured:METHOD",
    "prune-channels": "resnetbench.compress.prune_channels:METHOD",
    "distill": "resnetbench.compress.distill:METHOD",
}, make=_method)


def get_method(name: str) -> Method:
    return COMPRESSIONS.get(name)


def compression_names() -> tuple[str, ...]:
    return COMPRESSIONS.names()


def unsupported_dtype(compression: str, dtype: str) -> str | None:
    """Why a dtype and a compression method do not go together; None when they do."""
    return get_method(compression).unsupported(dtype)
