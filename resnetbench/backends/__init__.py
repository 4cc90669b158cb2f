"""Backends, one module each. Their registry (built-ins, the ``resnetbench.backends``
entry-point group, matrix import paths) lives in ``resnetbench.registries``, low in the layers,
and is re-exported here, its public home.

Example (in a package's pyproject)::

    [project.entry-points."resnetbench.backends"]
    mybackend = "mypkg.backend:MyBackend"

Listing names imports no backend module (and no torch): ``resnetbench validate`` needs
only the names.
"""

from resnetbench.registries import BACKENDS, DEFAULT_BACKEND, backend_names, get_backend, register_backend

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "backend_names", "get_backend", "register_backend"]
