"""Backends in one registry: built-ins, the ``resnetbench.backends`` entry-point group and
matrix import paths (``backends: {name: "pkg.mod:BackendClass"}``).

Example (in a package's pyproject)::

    [project.entry-points."resnetbench.backends"]
    mybackend = "mypkg.backend:MyBackend"

Listing names imports no backend module (and no torch): ``resnetbench validate`` needs
only the names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resnetbench.registry import Registry

if TYPE_CHECKING:
    from resnetbench.backends.base import Backend

# The backend a matrix gets when it lists none.
DEFAULT_BACKEND = "eager"


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
