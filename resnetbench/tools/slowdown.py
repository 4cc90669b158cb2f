"""Injected slowdowns for the gate's own checks (``gate-check``, ``gate-check --capacity``):
a runner that does its real work and then keeps the machine busy for a fraction as long
again, i.e. behaves like a model needing that much more compute."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def busy_wait(seconds: float) -> None:
    """Spin on ``time.perf_counter`` for ``seconds`` (a sleep could return early or late)."""
    if seconds <= 0:
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def pool_busy_wait(seconds: float) -> None:
    """Keep PyTorch's thread pool computing for ``seconds``: small matrix products until the deadline."""
    import torch

    a = _POOL_OPERANDS.get("a")
    if a is None:
        a = _POOL_OPERANDS["a"] = torch.randn(96, 96, generator=torch.Generator().manual_seed(0))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        torch.mm(a, a)


_POOL_OPERANDS: dict[str, Any] = {}


def wait_for(backend: str) -> Callable[[float], None]:
    """How a slowdown is injected into a backend's calls so that it behaves like more compute.

    Measured here (ResNet-34 at 64x64, 12 A vs slow20 run pairs each, mean estimated ratio
    for a true 1.20): a single-threaded spin after each eager call reads 1.178, because the
    pool's second core sits idle during the spin and the next call pays to wake it; keeping
    PyTorch's pool busy instead reads 1.199. ONNX Runtime's sessions stop their threads
    after each run anyway, and a single-threaded spin reads 1.207 there, while PyTorch
    work in between (its threads still spinning) wrecked the ONNX Runtime reference
    (0.94 +- 0.13). So: PyTorch backends keep PyTorch's pool busy, the others spin.
    """
    from resnetbench.backends import get_backend

    return pool_busy_wait if get_backend(backend).runs_torch_module else busy_wait


class SlowedRunner:
    """A runner whose ``run`` does the real work, then waits ``fraction`` times as long again."""

    def __init__(self, inner: Any, fraction: float, wait: Callable[[float], None] = busy_wait) -> None:
        self.inner = inner
        self.fraction = fraction
        self.wait = wait

    def prepare(self, x: Any) -> Any:
        return self.inner.prepare(x)

    def run(self, native: Any) -> Any:
        start = time.perf_counter()
        out = self.inner.run(native)
        self.wait(self.fraction * (time.perf_counter() - start))
        return out

    def to_logits(self, out: Any) -> Any:
        return self.inner.to_logits(out)


def parse_family(family: str) -> tuple[str, str]:
    """``'bf16'`` -> ('bf16', 'none'); ``'int8-static'`` -> ('int8', 'static')."""
    dtype, _, compression = family.partition("-")
    return dtype, compression or "none"
