"""The latency reference: a fixed ResNet-18 on the case's own backend, timed call by call next to the case.

Why it exists. On the shared 2-core machines this suite runs on, the median latency of
one unchanged model moves 10-20% from one run to the next (the machine's speed changes
in steps every few seconds), far more than the 5-10% slowdowns the gate has to catch.
Dividing by a reference timed in the same process only helps if the reference feels
the machine exactly as the case does, and measurements here showed how much that
depends on the reference:

- one conv kernel timed once per run: run-to-run spread of the normalised median barely
  smaller than without it;
- a PyTorch ResNet-18 timed before each block of samples: 3% for eager PyTorch, but
  6-14% for ONNX Runtime and OpenVINO (another runtime's threads, other kernels);
- the same network *on the case's own runtime*, one reference call right before every
  case call: 0.4% (eager), 0.9% (ONNX Runtime), 1.5% (OpenVINO) for ResNet-18 cases at
  64x64, 0.7-2% for ResNet-34/50 cases, ~4% when the input size differs.

So the reference is torchvision's ResNet-18 with seeded random weights at the case's
batch and input size, built by the case's backend with that backend's default settings
(never the matrix's) and run with *the recipe the case runs* (``tuning.py``), through the
artifact cache, *in the case's arithmetic family*
(``family``): the case's dtype, and int8 with the case's quantization method for
quantized cases. An fp32 reference does not track a bf16 or int8 case: in four
back-to-back runs of one unchanged matrix the fp32 reference slowed by 25% in one run
while the bf16 case slowed by 8%, and bf16 eager cases were flagged 1.10-1.16x
"regressed" in 3 of 6 comparisons. bf16 and int8 kernels (AMX/VNNI tiles, other
oneDNN/MLAS paths) feel the machine differently from fp32 ones. Because it
ignores the matrix and the weights, a pull request that changes a model, its weights,
its compression or the matrix's backend settings does not move it. Library upgrades do,
and they change the run's fingerprint, which ``compare`` flags.

Why the recipe follows the case. With the reference always on the default recipe, tuning
chose ``mkldnn`` for bf16 eager cases while their reference ran ``channels_last``: two kinds
of kernels, whose relative speed is not a constant of the code. The case/reference ratio of
one unchanged case read 0.690, 0.663, 0.729 and 0.720 in four processes, and 2 of 3 A/A
comparisons came out "regressed" (issue 27). On the same recipe both sides run the same
kernels. The code under test chooses the recipe, so it could move the reference with it:
``compare`` therefore never decides latency across a recipe change (it is a named,
blocking cause), and a recipe the reference's backend does not offer for ResNet-18 falls
back to the default, which ``recipe`` records.

Timing protocol (``time_pairs``): after a warm-up, ``pairs`` times ``[reference call,
case call]``, each call timed on its own. The gate works on ``log(case / reference)``
per pair, summarised per block of consecutive pairs (``stats.normalized_blocks``).
Calls timed right after a reference call run with caches the reference disturbed, so
these case times are slower than a plain loop's (by 10-30% for tiny 64x64 models); the
latency the suite reports comes from the plain pytest-benchmark loop instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resnetbench.compress import DEFAULT_COMPRESSION, get_method

REFERENCE_ARCH = "resnet18"
REFERENCE_ORIGIN = "<latency reference>"  # the Config.path of reference builds


@dataclass
class ReferenceWorkload:
    """A loaded reference: call ``run(native)`` to time one reference inference."""

    backend: str
    batch: int
    input_size: int
    runner: Any
    native: Any

    dtype: str = "fp32"
    compression: str = DEFAULT_COMPRESSION
    recipe: str = "default"

    @property
    def key(self) -> str:
        """What identifies this reference within a run (cases sharing it compare their reference times)."""
        return f"{self.backend}/{self.dtype}/{self.compression}/b{self.batch}/{self.input_size}/{self.recipe}"

    @property
    def description(self) -> str:
        comp = "" if self.compression == DEFAULT_COMPRESSION else f" {self.compression}"
        return (f"{REFERENCE_ARCH} {self.dtype}{comp}, seeded random weights, "
                f"{self.batch}x3x{self.input_size}x{self.input_size}, backend {self.backend} with its default settings, "
                f"recipe {self.recipe}")

    def run(self) -> Any:
        return self.runner.run(self.native)


def family(dtype: str, compression: str) -> tuple[str, str]:
    """(dtype, compression) of the reference that follows a case's arithmetic.

    Quantized cases get an int8 reference quantized by the same method; pruned or
    distilled models keep their dtype's dense arithmetic, so their reference is uncompressed.
    """
    from resnetbench.compress.base import INT8_BUDGET

    quantization = get_method(compression).quantization
    if quantization == INT8_BUDGET:
        # the budgeted model is static int8 with some layers in float; its reference is static
        # int8 (a budget search needs labelled data the reference's synthetic config lacks)
        return "int8", "static"
    if quantization is not None:
        return "int8", compression
    return dtype, DEFAULT_COMPRESSION


def reference_recipe(backend: str, batch: int, dtype: str, compression: str, recipe: str | None) -> str | None:
    """The recipe the reference runs for a case running ``recipe``: that one where the backend
    offers it for the reference, else None (its default; never a tuned choice of its own)."""
    from resnetbench.backends import get_backend
    from resnetbench.matrix import Case

    ref_dtype, ref_compression = family(dtype, compression)
    offered = [r.name for r in get_backend(backend).recipes(Case(REFERENCE_ARCH, ref_dtype, ref_compression, backend,
                                                                 batch))]
    return recipe if recipe in offered else None


def reference_for(backend: str, batch: int, input_size: int, threads: int, cache: Any, dtype: str = "fp32",
                  compression: str = DEFAULT_COMPRESSION, recipe: str | None = None) -> ReferenceWorkload:
    """Build (or fetch from the cache) and load the reference for cases of this backend, family, batch and
    size, run with ``recipe`` where the backend offers it for the reference (``reference_recipe``)."""
    import torch

    from resnetbench.build import build_default

    ref_dtype, ref_compression = family(dtype, compression)
    pinned = reference_recipe(backend, batch, dtype, compression, recipe)
    # Pinned or the default, never tuned: the reference must not move when tuning chooses differently.
    built = build_default(REFERENCE_ARCH, backend, batch, input_size, cache, threads, REFERENCE_ORIGIN,
                          ref_dtype, ref_compression, tune=pinned is not None, recipe=pinned)
    x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    return ReferenceWorkload(backend, batch, input_size, built.runner, built.runner.prepare(x), ref_dtype,
                             ref_compression, built.tuning["recipe"])


def reference_streams(backend: str, batch: int, input_size: int, threads: int, cache: Any, dtype: str,
                      compression: str, recipe: str | None, streams: int,
                      stream_threads: int) -> tuple[list[Any], ReferenceWorkload]:
    """The reference loaded ``streams`` times with ``stream_threads`` each, to serve LoadGen
    beside a case (``measure/capacity.py``), and the workload that names it."""
    from resnetbench.build import load_default_streams

    workload = reference_for(backend, batch, input_size, threads, cache, dtype, compression, recipe)
    pinned = reference_recipe(backend, batch, dtype, compression, recipe)
    runners = load_default_streams(REFERENCE_ARCH, backend, batch, input_size, cache, stream_threads,
                                   REFERENCE_ORIGIN, workload.dtype, workload.compression, workload.recipe, streams,
                                   pinned)
    return runners, workload


PAIR_WARMUP = 5
PAIR_WARMUP_S = 0.3


def time_pairs(reference: ReferenceWorkload, run: Callable[[Any], Any], native: Any, pairs: int) -> dict[str, Any]:
    """Milliseconds of ``pairs`` reference calls, each followed by one timed case call.

    Untimed pairs come first, for at least ``PAIR_WARMUP_S`` seconds and ``PAIR_WARMUP``
    pairs: the switch from the case's plain loop to alternation takes that long to settle.
    Measured on ONNX Runtime and OpenVINO at 64x64 (3-4 ms a pair), block ratios (5 pairs
    each) against their median: with 2 warm-up pairs the first four blocks read 0.78-0.97
    (the reference, cold, ran slower); with the reference warmed alone by 10 calls and 5
    warm-up pairs they read 1.06-1.23 (now the case was cold); either way about 20 pairs,
    80-100 ms, before the ratio settles, and baseline and head need not settle alike.
    """
    clock = time.perf_counter
    settle_until, warm = clock() + PAIR_WARMUP_S, 0
    while warm < PAIR_WARMUP or clock() < settle_until:
        reference.run()
        run(native)
        warm += 1
    ref_ms, case_ms = [], []
    for _ in range(pairs):
        start = clock()
        reference.run()
        middle = clock()
        run(native)
        end = clock()
        ref_ms.append((middle - start) * 1e3)
        case_ms.append((end - middle) * 1e3)
    return {"reference": reference.description, "reference_ms": ref_ms, "case_ms": case_ms}
