"""Outputs checked inside the timed loop (measure/timed_outputs.py): an honest runner passes;
one that returns the previous call's output, a cached one, or nothing fails, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import by_id

from resnetbench.measure.latency import own_loop
from resnetbench.measure.timed_outputs import TimedOutputCheck, aligned_batches, wrapped_batches

WEIGHT = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
IMAGES = torch.randn(8, 12, generator=torch.Generator().manual_seed(1))
LOGITS = IMAGES @ WEIGHT


class Honest:
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def run(self, native: torch.Tensor) -> torch.Tensor:
        return native @ WEIGHT

    def to_logits(self, out: Any) -> torch.Tensor:
        return out


class PreviousOutput(Honest):
    """Right when each call has its own prepare (the accuracy pass); in a loop, one call behind."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        self.fresh = True
        return super().prepare(x)

    def run(self, native: torch.Tensor) -> torch.Tensor:
        out = super().run(native)
        if self.fresh:
            self.fresh, self.previous = False, out
            return out
        previous, self.previous = self.previous, out
        return previous


class FirstOutputForever(Honest):
    cached: torch.Tensor | None = None

    def run(self, native: torch.Tensor) -> torch.Tensor:
        if self.cached is None:
            self.cached = super().run(native)
        return self.cached


class Empty(Honest):
    def run(self, native: torch.Tensor) -> torch.Tensor:
        return torch.empty(0)


def timed(runner: Honest, batch: int = 2, rounds: int = 12) -> dict[str, Any]:
    check = TimedOutputCheck.for_runner(runner, aligned_batches(IMAGES, LOGITS, batch))
    own_loop(check.call, None, 3, rounds, setup=check.next_args)
    check.finish()
    return check.verdict()


def test_an_honest_runner_passes_every_call() -> None:
    verdict = timed(Honest())
    assert verdict["verdict"] == "passed" and verdict["checked"] == 15 and verdict["failed"] == 0
    assert verdict["batches"] == 4 and verdict["worst_rel_l2"] == 0.0


@pytest.mark.parametrize("runner, reason", [
    (PreviousOutput(), "relative L2"),
    (FirstOutputForever(), "relative L2"),
    (Empty(), "output shape (0,), expected (2, 5)"),
])
def test_a_runner_that_does_not_compute_when_timed_fails(runner: Honest, reason: str) -> None:
    verdict = timed(runner)
    assert verdict["verdict"] == "failed"
    assert reason in verdict["reason"]
    assert verdict["failed"] >= 11  # every call after the first (the cached one's first is right)


def test_the_tolerance_stays_below_the_distance_between_batches() -> None:
    near = IMAGES.clone()
    near[2:4] = near[0:2] + 1e-5  # two batches whose outputs nearly coincide
    check = TimedOutputCheck.for_runner(Honest(), aligned_batches(near, near @ WEIGHT, 2))
    assert check.tolerance < check.separation() < 1e-4


def test_identical_batches_cannot_be_told_apart_and_do_not_pass() -> None:
    same = IMAGES[:2].repeat(4, 1)
    verdict = TimedOutputCheck.for_runner(Honest(), aligned_batches(same, same @ WEIGHT, 2))
    own_loop(verdict.call, None, 0, 4, setup=verdict.next_args)
    verdict.finish()
    assert verdict.verdict()["verdict"] == "undecidable"


def test_no_checked_call_is_not_a_pass() -> None:
    check = TimedOutputCheck.for_runner(Honest(), aligned_batches(IMAGES, LOGITS, 2))
    assert check.verdict()["verdict"] == "undecidable"


def test_batches_larger_than_half_the_inputs_wrap_and_still_catch_a_lagging_runner() -> None:
    assert len(aligned_batches(IMAGES, LOGITS, 6)) == 1
    batches = wrapped_batches(IMAGES, 6, PreviousOutput())
    assert len(batches) == 2 and not torch.equal(batches[0][1], batches[1][1])
    for runner, verdict in ((Honest(), "passed"), (PreviousOutput(), "failed")):
        check = TimedOutputCheck.for_runner(runner, wrapped_batches(IMAGES, 6, runner))
        own_loop(check.call, None, 1, 6, setup=check.next_args)
        check.finish()
        assert check.verdict()["verdict"] == verdict


STALE_CONFTEST = '''
from resnetbench.backends import register_backend
from resnetbench.backends.eager import EagerBackend, EagerRunner


class PreviousOutputRunner(EagerRunner):
    """Honest when every call has its own prepare (the accuracy pass); in a timed loop it
    computes each call but hands back the previous call's output."""

    def prepare(self, x):
        self.fresh = True
        return super().prepare(x)

    def run(self, native):
        out = super().run(native)
        if self.fresh:
            self.fresh, self.previous = False, out
            return out
        previous, self.previous = self.previous, out
        return previous


class Stale(EagerBackend):
    name = "eager-stale"

    def load(self, *args, **kwargs):
        runner = super().load(*args, **kwargs)
        return PreviousOutputRunner(runner.model, runner.case, runner.channels_last)


register_backend(Stale())
'''


def test_a_runner_that_returns_the_previous_output_when_timed_fails_its_latency(pytester: Any, run_matrix: Any) -> None:
    pytester.makeconftest(STALE_CONFTEST)
    matrix = """
matrix:
  arch: [resnet18]
  backend: [eager, eager-stale]
input_size: 32
dataset: {name: synthetic, samples: 16}
latency: {warmup: 1, rounds: 6, pairs: 8, blocks: 4}
tuning: {recipes: {eager-stale: contiguous}}
claims: false
"""
    result, data = run_matrix(matrix, "-m", "accuracy or latency")
    cases = by_id(data)
    honest, stale = cases["resnet18-fp32-none-eager-b1"], cases["resnet18-fp32-none-eager-stale-b1"]
    assert honest["outcome"] == "passed" and honest["latency"]["timed_outputs"]["verdict"] == "passed"
    # every call of every timing is checked: 1 warm-up + 6 rounds per timing, and a machine that
    # disturbed the first timing adds a re-timing (tests/FLAKES.md)
    attempts = len(honest["latency"]["stability"]["attempts"])
    assert honest["latency"]["timed_outputs"]["checked"] == 7 * attempts
    # the accuracy pass cannot see it: every batch there gets its own prepare
    assert stale["tests"] == {"accuracy": "passed", "latency": "failed"}
    assert stale["latency"]["timed_outputs"]["verdict"] == "failed"
    result.stdout.fnmatch_lines(["*resnet18-fp32-none-eager-stale-b1: outputs of the timed calls failed: call 2 (batch 1): "
                                 "relative L2 * from the accuracy pass's output > *"])
