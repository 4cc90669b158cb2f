"""One registry per extension kind: architectures, backends, compression methods.

Each registry is fed three ways, and is the single source of the names the matrix
validator accepts (``resnetbench validate`` and ``pytest --matrix`` see the same):

1. built-ins, as ``"module:attribute"`` targets imported on first use, so listing names
   (what validation needs) imports nothing heavy;
2. an entry-point group of installed packages, e.g. in a plugin's pyproject::

       [project.entry-points."resnetbench.backends"]
       mybackend = "mypkg.backend:MyBackend"

3. a matrix import path, e.g. ``backends: {mybackend: "mypkg.backend:MyBackend"}``.

What a target resolves to depends on the kind: an architecture is a factory
``fn(num_classes=...) -> nn.Module``; a backend is a ``Backend`` subclass (instantiated
once); a compression method is a ``Method`` instance.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(Exception):
    """An unknown name or a target that cannot be imported; the message is for the user."""


def import_target(target: str) -> Any:
    """``"pkg.module:attr"`` -> the attribute; RegistryError says what failed."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise RegistryError(f"{target!r} is not an import path of the form 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import {module_name!r} (from {target!r}): {exc}") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no {attr!r} (from {target!r})") from None
    return obj


class Registry(Generic[T]):
    """Names to lazily loaded objects of one extension kind."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str],
                 make: Callable[[Any], T] = lambda obj: obj) -> None:
        self.kind = kind
        self.group = group
        self._targets: dict[str, str] = dict(builtins)
        self._builtin = tuple(builtins)
        self._loaded: dict[str, T] = {}
        self._make = make

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> tuple[str, ...]:
        """Built-ins first, then installed entry points, then what was registered or imported."""
        names = list(self._builtin)
        for name in (*self._entry_points(), *self._targets, *self._loaded):
            if name not in names:
                names.append(name)
        return tuple(names)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        """The object for ``name``, imported and made on first use."""
        if name not in self._loaded:
            if name in self._targets:
                obj = import_target(self._targets[name])
            else:
                eps = self._entry_points()
                if name not in eps:
                    raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
                try:
                    obj = eps[name].load()
                except Exception as exc:  # a broken plugin is the user's input: say which
                    raise RegistryError(f"{self.kind} {name!r} from entry point {eps[name].value!r}"
                                        f" (group {self.group}) failed to load: {exc}") from None
            self._loaded[name] = self._make(obj)
        return self._loaded[name]

    def register(self, name: str, obj: Any) -> None:
        """Register an object (or a class/factory, made as the kind makes it) under ``name``."""
        self._loaded[name] = self._make(obj)

    def add_target(self, name: str, target: str) -> None:
        """Register ``name`` from a ``"module:attr"`` import path (a matrix's declaration).

        The target is imported now, so a typo is reported where the matrix names it.
        """
        if name in self._loaded and self._targets.get(name) == target:
            return
        self._targets[name] = target
        self._loaded.pop(name, None)
        try:
            self.get(name)
        except RegistryError:
            del self._targets[name]
            raise

    def unregister(self, name: str) -> None:
        """Forget a name added by ``register`` or ``add_target`` (tests, temporary wrappers)."""
        self._loaded.pop(name, None)
        if name not in self._builtin:
            self._targets.pop(name, None)
