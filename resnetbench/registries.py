"""The backend and compression-method registries: built-ins, the ``resnetbench.backends`` and
``resnetbench.compressions`` entry-point groups, and matrix import paths.

They sit low in the layers (docs/architecture.md): the matrix's validation needs the names,
and naming a backend or a method imports none of their modules (and no torch). The packages
``resnetbench.backends`` and ``resnetbench.compress`` re-export them, which stays the public
home for extensions.

Example (in a package's pyproject)::

    [project.entry-points."resnetbench.backends"]
    mybackend = "mypkg.backend:MyBackend"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resnetbench.domain import Method
from resnetbench.registry import Registry

if TYPE_CHECKING:
    from resnetbench.backends.base import Backend

# The backend and the compression a matrix gets when it lists none.
DEFAULT_BACKEND = "eager"
DEFAULT_COMPRESSION = "none"


def _instance(obj: Any) -> Backend:
    # A target is a Backend subclass (instantiated once) or an instance.
    return obj() if isinstance(obj, type) else obj


BACKENDS: Registry[Backend] = Registry("backend", "resnetbench.backends", {
    "eager": "resnetbench.backends.eager:EagerBackend",
    "torchscript": "resnetbench.backends.torchscript:TorchScriptBackend",
    "compile": "resnetbench.backends.compile:CompileBackend",
    "onnxruntime": "resnetbench.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "resnetbench.backends.openvino:OpenVINOBackend",
    "litert": "resnetbench.backends.litert:LiteRTBackend",
    "coreml": "resnetbench.backends.coreml:CoreMLBackend",
    "cuda": "resnetbench.backends.gpu:CudaBackend",
    "onnxruntime-cuda": "resnetbench.backends.gpu:OrtCudaBackend",
    "onnxruntime-tensorrt": "resnetbench.backends.gpu:OrtTensorRTBackend",
    "tensorrt": "resnetbench.backends.gpu:TorchTensorRTBackend",
}, make=_instance)


def backend_names() -> tuple[str, ...]:
    """Built-in names plus those installed packages declare and those registered."""
    return BACKENDS.names()


def get_backend(name: str) -> Backend:
    """The backend instance for a name (imported on first use)."""
    return BACKENDS.get(name)


def register_backend(backend: Backend) -> None:
    """Register a backend instance under its name (tests, wrappers such as a slowdown injector)."""
    BACKENDS.register(backend.name, backend)


def _method(obj: object) -> Method:
    if not isinstance(obj, Method):
        raise TypeError(f"a compression method must be a resnetbench.compress.base.Method, got {type(obj).__name__}")
    return obj


COMPRESSIONS: Registry[Method] = Registry("compression method", "resnetbench.compressions", {
    "none": "resnetbench.compress.identity:METHOD",
    "dynamic": "resnetbench.compress.dynamic:METHOD",
    "static": "resnetbench.compress.static:METHOD",
    "int8-budget": "resnetbench.compress.int8_budget:METHOD",
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
