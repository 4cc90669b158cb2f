"""Outputs checked inside the timed loop: the timed path must compute what the accuracy pass checked.

A latency figure is only worth something if the calls it times compute the model's
outputs. A runner can be fast for the wrong reason: it may hand back the previous call's
result, a cached tensor, or an empty one when it is called in a loop (MLPerf's TEST01
compliance test guards the same thing). So the timed loop does not call the runner on
one input over and over: each timed call gets the next of a few input batches taken
from the accuracy pass's inputs (full batches, aligned as that pass cut them; for batches
larger than half those inputs, ``wrapped_batches``), and
between calls, outside the timer, the previous call's output is compared with the
accuracy pass's output for the same batch.

The comparison is relative L2 of the logits, within ``tolerance``: 1e-3, or a quarter of
the smallest distance between the expected outputs of two different batches when that is
smaller, so a stale output (another batch's result) can never pass. The same runner on
the same input gives the same bits here (measured: 0 on every CPU backend), so 1e-3 only
leaves room for a library that changes summation order between calls. Every timed
call is checked: the check runs between calls, where it costs no timed time, and the
runner's output is only referenced (not copied) inside the timed call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from resnetbench.tuning import rel_l2

POOL = 4  # input batches the timed calls cycle through
REL_L2_TOLERANCE = 1e-3
SHOWN = 3  # mismatches named in the failure message


def aligned_batches(images: torch.Tensor, logits: torch.Tensor, batch: int,
                    pool: int = POOL) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``pool`` (inputs, expected logits) pairs: full batches as the accuracy pass cut them."""
    full = min(pool, len(images) // batch)
    return [(images[i * batch:(i + 1) * batch], logits[i * batch:(i + 1) * batch]) for i in range(full)]


def wrapped_batches(images: torch.Tensor, batch: int, runner: Any,
                    pool: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For a batch larger than half the accuracy inputs: ``pool`` batches that wrap around the
    images at different offsets, expected from the runner itself, untimed.

    Each expected output is the second of two calls on its batch, so a runner that hands
    back its previous call's result still gives the right one here, and the wrong one when
    the timed loop changes batch at every call.
    """
    out = []
    for i in range(pool):
        index = (torch.arange(batch) + i * max(1, len(images) // pool)) % len(images)
        x = images[index]
        native = runner.prepare(x)
        runner.run(native)
        out.append((x, runner.to_logits(runner.run(native)).float().clone()))
    return out


@dataclass
class TimedOutputCheck:
    """Feeds the timed calls a rotating input and checks each call's output between calls.

    Use ``call`` as the timed function and ``next_args`` as pytest-benchmark's ``setup``
    (it runs before every round, outside the timer); ``finish()`` after the loop checks
    the last call.
    """

    run: Callable[[Any], Any]
    to_logits: Callable[[Any], torch.Tensor]
    natives: list[Any]
    expected: list[torch.Tensor]
    tolerance: float = REL_L2_TOLERANCE
    checked: int = 0
    worst: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)  # the host batches behind ``natives``
    _index: int = -1
    _pending: int | None = None
    _last: Any = None

    @classmethod
    def for_runner(cls, runner: Any, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> TimedOutputCheck:
        check = cls(runner.run, runner.to_logits, [runner.prepare(x) for x, _ in batches],
                    [y.float() for _, y in batches])
        check.inputs = [x for x, _ in batches]
        check.tolerance = min(REL_L2_TOLERANCE, 0.25 * check.separation()) if len(batches) > 1 else REL_L2_TOLERANCE
        return check

    def separation(self) -> float:
        """The smallest relative L2 distance between the expected outputs of two batches."""
        pairs = [(a, b) for i, a in enumerate(self.expected) for b in self.expected[i + 1:]]
        return min((rel_l2(a, b) for a, b in pairs), default=float("inf"))

    def call(self, native: Any) -> Any:
        # Timed: only a reference to the output is kept; it is compared before the next call.
        out = self.run(native)
        self._last = out
        return out

    def next_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        self._check_pending()
        self._index = (self._index + 1) % len(self.natives)
        self._pending = self._index
        return (self.natives[self._index],), {}

    def finish(self) -> None:
        self._check_pending()

    def _check_pending(self) -> None:
        if self._pending is None:
            return
        index, out, self._pending, self._last = self._pending, self._last, None, None
        self.checked += 1
        expected = self.expected[index]
        try:
            logits = self.to_logits(out)
        except Exception as exc:  # an output the runner cannot even turn into logits
            self.mismatches.append(f"call {self.checked} (batch {index}): unreadable output: {type(exc).__name__}: {exc}")
            return
        if tuple(logits.shape) != tuple(expected.shape):
            self.mismatches.append(f"call {self.checked} (batch {index}): output shape {tuple(logits.shape)}, "
                                   f"expected {tuple(expected.shape)}")
            return
        if not torch.isfinite(logits).all():
            self.mismatches.append(f"call {self.checked} (batch {index}): non-finite outputs")
            return
        err = rel_l2(logits, expected)
        self.worst = max(self.worst, err)
        if err > self.tolerance:
            self.mismatches.append(f"call {self.checked} (batch {index}): relative L2 {err:.3g} from the accuracy "
                                   f"pass's output > {self.tolerance:.3g}")

    def verdict(self) -> dict[str, Any]:
        """What the results record: calls checked, the worst distance, the tolerance, failures."""
        if not self.checked:
            status, why = "undecidable", "no timed call was checked"
        elif self.tolerance <= 0:
            status, why = "undecidable", "two input batches have the same expected output: a stale output would pass"
        elif self.mismatches:
            status, why = "failed", "; ".join(self.mismatches[:SHOWN]) + (
                f" (and {len(self.mismatches) - SHOWN} more)" if len(self.mismatches) > SHOWN else "")
        else:
            status, why = "passed", ""
        return {"verdict": status, "reason": why, "checked": self.checked, "failed": len(self.mismatches),
                "batches": len(self.natives), "worst_rel_l2": self.worst, "tolerance": self.tolerance}
