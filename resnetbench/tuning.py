"""Which recipe runs an artifact: timed once on the machine, kept in the cache, reused.

A backend lists the ways an expert would run its artifact (``Backend.recipes``: memory
layouts, oneDNN conversion, ONNX Runtime's IOBinding, OpenVINO streams and pinning...).
Which one is fastest depends on the model, the dtype and the CPU, so it is measured, not
assumed: every recipe is loaded, must compute the same outputs as the backend's default
(relative L2 of the logits within ``PARITY_REL_L2``), and the survivors are timed in
alternating blocks (A B C, C B A, ...) so that machine drift lands on all of them alike,
within a budget of seconds per artifact. The fastest wins; the default keeps its place
unless another recipe beats it by more than ``KEEP_DEFAULT_WITHIN`` (a near-tie is not
worth a different code path, and near-ties would flip between caches).

The choice is a cache entry keyed by the artifact, the recipes and the machine's
fingerprint: a warm run, or another process, loads the chosen recipe without timing
anything. A matrix can pin a recipe per backend (``tuning.recipes``) or turn tuning off
(``tuning.enabled: false``: the default recipe).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch

from resnetbench.backends.base import Recipe, Runner
from resnetbench.settings import TuningSettings

PROTOCOL = 3  # bump when the way recipes are checked or timed changes: cached choices are then made again
# (3: non-finite outputs rejected; a cached choice of 2 may be a recipe that returned NaN)
PARITY_REL_L2 = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 5e-2, "int8": 5e-2}
KEEP_DEFAULT_WITHIN = 0.02
MIN_REPS, MAX_REPS = 3, 30
# Seconds of alternating blocks to aim for (within the budget). Five repetitions were too few
# here: two OpenVINO bf16 recipes 4-6% apart on ResNet-50 came out in the wrong order.
TIMING_TARGET_S = 8.0
BLOCK_S = 0.25  # seconds of calls per block: enough calls for a median, short enough for many repetitions
MIN_ROUNDS, MAX_ROUNDS = 3, 20


class TuningError(Exception):
    """A pinned recipe the backend does not offer for the case; the message names both."""


@dataclass
class Trial:
    """One recipe's outcome while tuning."""

    load_s: float = 0.0
    block_medians_ms: list[float] = field(default_factory=list)
    rejected: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.block_medians_ms)

    def to_dict(self) -> dict[str, Any]:
        if self.rejected:
            return {"rejected": self.rejected, "load_s": round(self.load_s, 3)}
        return {"median_ms": round(self.median_ms, 4), "block_medians_ms": [round(v, 4) for v in self.block_medians_ms],
                "load_s": round(self.load_s, 3)}


def rel_l2(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative L2 distance, in float64: the parity a recipe must keep with the default recipe's
    outputs (and the timed calls' with the accuracy pass's, measure/timed_outputs.py)."""
    ref64 = ref.double()
    return float((out.double() - ref64).norm() / ref64.norm().clamp_min(1e-30))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def time_recipes(
    recipes: tuple[Recipe, ...],
    load: Callable[[Recipe, bool], Runner],
    sample: torch.Tensor,
    dtype: str,
    budget_s: float,
    timing_lock: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[str, dict[str, Trial], dict[str, Runner], float]:
    """Load, check and time every recipe; (chosen name, trials, loaded runners, seconds spent timing).

    The first recipe that loads is the parity reference (normally the default). A recipe
    that fails to load or computes different outputs is recorded with the reason and
    never chosen. Raises the first load error when no recipe loads. When recipes load but
    none passes its checks (every one returns NaN/Inf: random deep weights overflow fp16),
    nothing is timed and the first that ran is returned: the case runs it, and its accuracy
    test fails with the reason, instead of every test of the case erroring here.
    """
    trials: dict[str, Trial] = {}
    loaded: dict[str, tuple[Runner, Any]] = {}
    reference: torch.Tensor | None = None
    first_error: BaseException | None = None
    ran: list[str] = []  # recipes that loaded and returned outputs, whatever the outputs
    tolerance = PARITY_REL_L2.get(dtype, 5e-2)
    for recipe in recipes:
        trial = trials[recipe.name] = Trial()
        start = time.perf_counter()
        try:
            runner = load(recipe, True)  # on a private copy of the model: loads may change it
            native = runner.prepare(sample)
            out = runner.to_logits(runner.run(native)).clone()
        except Exception as exc:  # a recipe this model or library version rejects is skipped, with the reason
            trial.rejected = f"does not load or run: {_first_line(exc)}"
            first_error = first_error or exc
            continue
        finally:
            trial.load_s = time.perf_counter() - start
        ran.append(recipe.name)
        if not torch.isfinite(out).all():
            # Checked first and by itself: NaN compares false with every tolerance.
            trial.rejected = f"{int((~torch.isfinite(out)).sum())} non-finite outputs (NaN/Inf) on the sample"
            continue
        if reference is None:
            reference = out
        elif not (err := rel_l2(out, reference)) <= tolerance:
            trial.rejected = (f"outputs differ from {next(iter(loaded))!r}'s: relative L2 {err:.2e} > {tolerance:g}")
            continue
        loaded[recipe.name] = (runner, native)
    if not loaded:
        if not ran:
            assert first_error is not None  # every recipe failed to load: that error is the case's
            raise first_error
        return ran[0], trials, {}, 0.0
    start = time.perf_counter()
    with timing_lock():
        _time_blocks(loaded, trials, budget_s)
    timing_s = time.perf_counter() - start
    best = min(loaded, key=lambda name: trials[name].median_ms)
    default = next(iter(loaded))
    chosen = default if trials[default].median_ms <= trials[best].median_ms * (1 + KEEP_DEFAULT_WITHIN) else best
    return chosen, trials, {name: runner for name, (runner, _) in loaded.items()}, timing_s


def _time_blocks(loaded: dict[str, tuple[Runner, Any]], trials: dict[str, Trial], budget_s: float) -> None:
    """Alternating blocks of calls per recipe for ``TIMING_TARGET_S`` (at most the budget), at least
    ``MIN_REPS`` and at most ``MAX_REPS`` repetitions."""
    clock = time.perf_counter
    start = clock()
    per_call = {}
    for name, (runner, native) in loaded.items():  # warm-up, and how long a call takes
        for _ in range(2):
            runner.run(native)
        t0 = clock()
        runner.run(native)
        per_call[name] = clock() - t0
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BLOCK_S / max(max(per_call.values()), 1e-6))))
    names = list(loaded)
    rep = 0
    while rep < MAX_REPS:
        rep_start = clock()
        for name in names if rep % 2 == 0 else reversed(names):
            runner, native = loaded[name]
            runner.run(native)  # one untimed call: the switch from the other recipe's kernels
            samples = []
            for _ in range(rounds):
                t0 = clock()
                runner.run(native)
                samples.append((clock() - t0) * 1e3)
            trials[name].block_medians_ms.append(statistics.median(samples))
        rep += 1
        if rep >= MIN_REPS and clock() - start + (clock() - rep_start) > min(budget_s, TIMING_TARGET_S):
            break


@cache
def machine_fingerprint(threads: int) -> str:
    """The hash that makes a timing valid only on the machine and libraries it was taken on."""
    from resnetbench.environment import fingerprint

    return str(fingerprint(threads)["hash"])


def choose(
    backend_name: str,
    case_id: str,
    recipes: tuple[Recipe, ...],
    tuning: TuningSettings,
    load: Callable[[Recipe, bool], Runner],
    sample: torch.Tensor,
    dtype: str,
    cache: Any,
    artifact_key: str,
    threads: int,
    timing_lock: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> tuple[Runner, dict[str, Any]]:
    """The runner of the recipe that runs this artifact, and what the results record about the choice.

    ``load(recipe, private)`` loads the artifact with a recipe; ``private`` asks it to work
    on a copy of the model (tuning loads several recipes from one model).
    """
    names = [r.name for r in recipes]
    by_name = {r.name: r for r in recipes}
    pinned = tuning.recipes.get(backend_name)
    offered = {r.name: r.summary for r in recipes}
    if pinned is not None:
        if pinned not in by_name:
            raise TuningError(f"tuning.recipes.{backend_name}: {pinned!r} is not a recipe of {backend_name} for "
                              f"{case_id}; it has: {', '.join(names)}")
        start = time.perf_counter()
        runner = load(by_name[pinned], False)
        return runner, {"recipe": pinned, "how": "pinned by the matrix (tuning.recipes)", "offered": offered,
                        "cost_s": 0.0, "load_s": time.perf_counter() - start}
    if len(recipes) == 1 or not tuning.enabled:
        how = "the backend's only recipe" if len(recipes) == 1 else "tuning off (tuning.enabled: false): the default"
        return load(recipes[0], False), {"recipe": recipes[0].name, "how": how, "offered": offered, "cost_s": 0.0}
    budget = float(tuning.budget_s)
    description = {"artifact": artifact_key, "fingerprint": machine_fingerprint(threads), "protocol": PROTOCOL,
                   "recipes": [[r.name, r.options] for r in recipes], "budget_s": budget,
                   "sample": list(sample.shape)}
    kept: dict[str, Runner] = {}

    def build(out: Any) -> dict[str, Any]:
        start = time.perf_counter()
        chosen, trials, runners, timing_s = time_recipes(recipes, load, sample, dtype, budget, timing_lock)
        if chosen in runners:  # absent when no recipe passed: the choice is loaded below
            kept[chosen] = runners[chosen]
        return {"files": [], "chosen": chosen, "trials": {n: t.to_dict() for n, t in trials.items()},
                "cost_s": round(time.perf_counter() - start, 3), "timing_s": round(timing_s, 3)}

    _, meta = cache.get_or_build("tuning", f"{backend_name}-{case_id}", description, build)
    chosen = meta["chosen"]
    if chosen not in by_name:  # a cached choice the backend no longer offers cannot happen: recipes are in the key
        raise TuningError(f"cached tuning for {case_id} chose {chosen!r}, which {backend_name} does not offer")
    timed = [name for name, trial in meta["trials"].items() if "median_ms" in trial]
    if not timed:
        reasons = "; ".join(f"{name}: {trial['rejected']}" for name, trial in meta["trials"].items())
        how = (f"no recipe passed its checks ({reasons}): {chosen!r} runs untimed, and the case's accuracy test "
               "says why")
    elif len(timed) == 1:
        how = "the only recipe that loaded and computed the default's outputs"
    elif chosen == names[0]:
        how = f"the default: no other recipe was faster by more than {KEEP_DEFAULT_WITHIN:.0%}"
    else:
        how = "the fastest of the timed recipes"
    record = {"recipe": chosen, "how": how, "offered": offered, "trials": meta["trials"], "cost_s": meta["cost_s"],
              "timing_s": meta["timing_s"], "cached": meta["cached"], "budget_s": budget}
    if meta["cached"] or chosen not in kept:
        start = time.perf_counter()
        runner = load(by_name[chosen], False)
        record["load_s"] = time.perf_counter() - start
        return runner, record
    return kept[chosen], record
