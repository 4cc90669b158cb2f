"""Backends in a plain registry; third parties add entries through entry points.

Example (in a package's pyproject)::

    [project.entry-points."resnetbench.backends"]
    mybackend = "mypkg.backend:MyBackend"
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from resnetbench.backends.base import Backend

_BUILTIN = {
    "eager": "resnetbench.backends.eager:EagerBackend",
    "torchscript": "resnetbench.backends.torchscript:TorchScriptBackend",
    "compile": "resnetbench.backends.compile:CompileBackend",
    "onnxruntime": "resnetbench.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "resnetbench.backends.openvino:OpenVINOBackend",
    "cuda": "resnetbench.backends.gpu:CudaBackend",
    "onnxruntime-cuda": "resnetbench.backends.gpu:OrtCudaBackend",
    "onnxruntime-tensorrt": "resnetbench.backends.gpu:OrtTensorRTBackend",
    "tensorrt": "resnetbench.backends.gpu:TorchTensorRTBackend",
}
_INSTANCES: dict[str, Backend] = {}


def backend_names() -> tuple[str, ...]:
    """Built-in names plus those installed packages declare."""
    extra = tuple(ep.name for ep in entry_points(group="resnetbench.backends") if ep.name not in _BUILTIN)
    registered = tuple(n for n in _INSTANCES if n not in _BUILTIN and n not in extra)
    return tuple(_BUILTIN) + extra + registered


def get_backend(name: str) -> Backend:
    """The backend instance for a name (imported on first use)."""
    if name not in _INSTANCES:
        target = _BUILTIN.get(name)
        if target is None:
            eps = {ep.name: ep for ep in entry_points(group="resnetbench.backends")}
            if name not in eps:
                raise KeyError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
            _INSTANCES[name] = eps[name].load()()
        else:
            module, _, cls = target.partition(":")
            _INSTANCES[name] = getattr(import_module(module), cls)()
    return _INSTANCES[name]


def register_backend(backend: Backend) -> None:
    """Register a backend instance (tests and wrappers such as the gate's slowdown injector)."""
    _INSTANCES[backend.name] = backend
