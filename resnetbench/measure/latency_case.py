"""One case's latency (``test_latency``): pytest-benchmark's loop, the paired reference timings
the gate decides on, re-timed while the machine disturbed them, the check of every timed call's
output, the roofline and (when the matrix asks) the per-layer profile.

The timing runs alone on the machine (``quiet.exclusive``); ``quiet.ForeignLoad`` measures what
other processes did meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from resnetbench import quiet
from resnetbench.measure.latency import count_flops, own_loop, roofline, summarize
from resnetbench.measure.latency_reference import family, reference_for, time_pairs
from resnetbench.measure.outputs import case_outputs
from resnetbench.measure.stability import assess, cause
from resnetbench.records import LatencyRecord
from resnetbench.roof import roof_for
from resnetbench.settings import LatencySettings

RETIME_PAUSE_S = 2.0
REPLICA_CHECKED_CALLS = 3


@dataclass
class LatencyMeasurement:
    """What the latency test records, the notes for the case, and why it fails (None: it passed)."""

    record: LatencyRecord
    notes: list[str] = field(default_factory=list)
    failure: str | None = None


def measure_latency(case: Any, built: Any, state: Any, benchmark: Any) -> LatencyMeasurement:
    """Time the case (see the module's doc); fail closed on wrong timed outputs and on a regression."""
    cfg = state.config
    with quiet.shared(state.cache.root):
        reference = _reference(case, built, state)
        flops = _flops(case, built, state)
        outputs = _timed_output_check(case, built, state)
    native = outputs.natives[0]  # the reference pairs time the case on the first batch
    # No other worker builds, evaluates or times while this case is timed; ForeignLoad sees the rest.
    with quiet.exclusive(state.cache.root), quiet.ForeignLoad() as foreign:
        samples, paired, wall, stability = _time_until_stable(built, native, reference, state, benchmark, outputs)
        gate = _gate(case, paired, state, built.tuning.get("recipe")) if stability["verdict"] != "unstable" else None
        if gate is not None and gate["decision"] == "inconclusive":
            # Too noisy to decide: time twice the pairs again and decide on those.
            start = time.perf_counter()
            paired = {**time_pairs(reference, built.runner.run, native, 2 * cfg.latency.pairs),
                      "blocks": 2 * cfg.latency.blocks, "reference_key": reference.key, "recipe": reference.recipe}
            stability["timing_s"] += time.perf_counter() - start
            rerun = _gate(case, paired, state, built.tuning.get("recipe"))  # the same baseline: not None when the first was not
            assert rerun is not None
            gate = {**rerun, "rerun": True}
        # A pass of its own, after the timing and still alone: the profiler never runs in the timed loop.
        profile = _profile(case, built, state, outputs.inputs[0]) if cfg.profile and not state.replica else None
    rec = summarize(samples, case.batch)
    # The roof of the arithmetic the case's convolutions run (int8 against int8's), not of its dtype's name.
    roof_dtype = built.backend.compute_dtype(case)
    roof_gflops, roof_basis = roof_for(state.environment.get("roofs") or {}, roof_dtype)
    rec.update({
        **flops,
        "flops_note": "FLOPs of the fp32 graph (1 MAC = 2 FLOPs), counted by torch.utils.flop_counter",
        **roofline(flops["flops"], rec["median_ms"], roof_gflops),
        "roof_dtype": roof_dtype,
        "peak_basis": roof_basis,
        "warmup": cfg.latency.warmup,
        "paired": paired,
        "stability": stability,
        "threads": state.threads,
        # measured: other processes kept fewer than quiet.ALONE_BELOW_CORES cores busy (None off Linux)
        "ran_alone": foreign.alone,
        "foreign_load_cores": foreign.cores,
        "steal_cores": foreign.steal_cores,
        "wall_s": wall,
        # seconds inside the plain loops and the reference pairs, re-timings included: what
        # a warm run should spend its time on
        "timing_s": round(stability.pop("timing_s"), 3),
        "runtime": built.meta.get("runtime", {}),
        "timed_outputs": outputs.verdict(),
        "profile": profile,
    })
    if stability["verdict"] == "unstable" or stability["machine"]["verdict"] == "disturbed":
        stability["cause"] = cause(foreign.cores, foreign.steal_cores)
    result = LatencyMeasurement(LatencyRecord.from_dict(rec))
    if foreign.alone is False:
        result.notes.append(f"latency timed beside other load: {foreign.cores} cores busy elsewhere")
    if stability["verdict"] == "unstable":
        result.notes.append(f"latency unstable after {len(stability['attempts'])} timings: "
                            f"{'; '.join(stability['reasons'])} ({stability['cause']})")
    elif stability["machine"]["verdict"] == "disturbed":
        result.notes.append(f"latency figures taken on a disturbed machine: "
                            f"{'; '.join(stability['machine']['reasons'])} ({stability['cause']}); "
                            "the paired ratio the gate compares stayed stable")
    checked = rec["timed_outputs"]
    if checked["verdict"] != "passed":
        # Fail closed: a timing whose outputs were wrong (or could not be checked) measured something else.
        result.failure = f"{case.id}: outputs of the timed calls {checked['verdict']}: {checked['reason']}"
        return result
    if gate is not None:
        result.record.gate = gate
        if gate["decision"] == "regressed":
            result.failure = f"{case.id}: latency regressed against the baseline: {gate['reason']}"
    return result


def _flops(case: Any, built: Any, state: Any) -> dict[str, int]:
    """FLOPs of the case's fp32 graph, counted once and kept in the artifact cache (deterministic)."""
    from resnetbench.build import base_description, code_version, settings_for

    cfg = state.config
    # what the compressed model's structure depends on, as its own cache entry (build.compressed_model)
    prepare = built.method.prepare
    desc = {**base_description(cfg, case.arch), "compression": case.compression, "settings": settings_for(case),
            "dataset": cfg.dataset.to_dict(), "batch": case.batch,
            "code": code_version("resnetbench.measure.latency", *([prepare.__module__] if prepare else []))}
    key = ("flops", repr(desc))
    if key not in state.memo:
        sample = torch.randn(case.batch, 3, cfg.input_size, cfg.input_size)
        _, meta = state.cache.get_or_build(
            "flops", f"{case.arch}-{case.compression}-b{case.batch}", desc,
            lambda out: {"files": [], **count_flops(built.fp32_model, sample)})
        state.memo[key] = {"flops": int(meta["flops"]), "macs": int(meta["macs"])}
    return state.memo[key]


def _reference(case: Any, built: Any, state: Any) -> Any:
    """The latency reference in the case's arithmetic family on its backend, running the case's
    recipe (``latency_reference.py``), loaded once per run."""
    cfg = state.config
    recipe = built.tuning.get("recipe")
    key = ("reference", case.backend, case.batch, cfg.input_size, family(case.dtype, case.compression), recipe)
    if key not in state.memo:
        state.memo[key] = reference_for(case.backend, case.batch, cfg.input_size, state.threads,
                                        state.cache, case.dtype, case.compression, recipe)
    return state.memo[key]


def _profile(case: Any, built: Any, state: Any, x: torch.Tensor) -> dict[str, Any]:
    """The backend's per-unit profile of the case (``backends/profile.py``), or why there is none."""
    from resnetbench.backends.base import DEFAULT_RECIPE

    state.phase(case, "profile")
    name = built.tuning.get("recipe")
    recipe = next((r for r in built.backend.recipes(built.case) if r.name == name), DEFAULT_RECIPE)
    try:
        profile = built.backend.profile(built.runner, x, model=built.model, entry=built.entry, meta=built.meta,
                                        threads=state.threads, recipe=recipe, calls=state.config.profile.calls)
    except Exception as exc:  # a profiler that fails leaves the latency figure intact, with the reason
        return {"units": [], "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    if profile is None:
        return {"units": [], "error": f"{case.backend} has no profiler wired in"}
    return profile


def _timed_output_check(case: Any, built: Any, state: Any) -> Any:
    """The check of every timed call's output against the accuracy pass's (``timed_outputs.py``)."""
    from resnetbench.measure.accuracy_reference import accuracy_inputs
    from resnetbench.measure.timed_outputs import TimedOutputCheck, aligned_batches, wrapped_batches

    inputs = accuracy_inputs(state.config, state.memo)
    logits, _ = case_outputs(built, inputs, state)
    batches = aligned_batches(inputs.images, logits, case.batch)
    if len(batches) < 2:
        batches = wrapped_batches(inputs.images, case.batch, built.runner)
    return TimedOutputCheck.for_runner(built.runner, batches)


def _time_until_stable(built: Any, native: Any, reference: Any, state: Any, benchmark: Any,
                       outputs: Any) -> tuple[list[float], dict[str, Any], float, dict[str, Any]]:
    """Plain loop then reference pairs, re-timed (up to ``latency.retimes`` times) while unstable.

    Returns the samples, the pairs and wall time of the last timing, and its stability
    record: ``stable`` at the first try, ``retimed`` when a re-timing came out clean, else
    ``unstable`` (with every attempt's reasons).

    A replica (``latency.processes``) contributes only its pairs to the gate: it checks the
    outputs of ``REPLICA_CHECKED_CALLS`` calls instead of timing the plain loop, its samples are
    its paired case calls, and it re-times only when the ratio is unstable (a disturbed machine
    moves the absolute figures, which a replica does not report). Measured on the default
    matrix, warm, 2 cores: the plain loop was 60% of a replica's timing.
    """
    lat = state.config.latency
    pairs, blocks = pairs_per_process(lat)
    best = state.memo.setdefault("reference-best-ms", {})
    attempts: list[dict[str, Any]] = []
    timing_s = 0.0
    for attempt in range(1 + lat.retimes):
        if attempt:
            time.sleep(RETIME_PAUSE_S)  # let whatever loaded the machine pass
        start = time.perf_counter()
        if state.replica:
            own_loop(outputs.call, None, 0, REPLICA_CHECKED_CALLS, setup=outputs.next_args)
        elif attempt == 0 and not benchmark.disabled:
            # pytest-benchmark's own loop for the first timing; it allows one pedantic call per test.
            # Each call gets the next input batch from ``outputs.next_args`` (untimed), which
            # also checks the previous call's output.
            benchmark.pedantic(outputs.call, setup=outputs.next_args, warmup_rounds=lat.warmup,
                               rounds=lat.rounds, iterations=1)
            samples = [s * 1e3 for s in benchmark.stats.stats.data]
        else:
            samples = own_loop(outputs.call, None, lat.warmup, lat.rounds, setup=outputs.next_args)
        outputs.finish()
        wall = time.perf_counter() - start
        paired = {**time_pairs(reference, built.runner.run, native, pairs),
                  "blocks": blocks, "reference_key": reference.key, "recipe": reference.recipe}
        if state.replica:
            samples = list(paired["case_ms"])
        timing_s += time.perf_counter() - start
        check = assess(samples, paired["reference_ms"], best.get(reference.key), paired["case_ms"])
        quiet_machine = check["machine"]["verdict"] == "quiet"
        # per attempt: unstable (the compared ratio), disturbed (only the machine's speed), stable
        this = "unstable" if check["verdict"] == "unstable" else ("stable" if quiet_machine else "disturbed")
        attempts.append({"verdict": this, "reasons": check["reasons"] + check["machine"]["reasons"],
                         "figures": check["figures"], "median_ms": float(sorted(samples)[len(samples) // 2])})
        if check["verdict"] == "stable" and (quiet_machine or state.replica):
            ref_median = sorted(paired["reference_ms"])[len(paired["reference_ms"]) // 2]
            best[reference.key] = min(best.get(reference.key, ref_median), ref_median)
            break
    # Re-timed while either the ratio or the machine was unsteady; only the ratio makes a verdict.
    verdict = "unstable" if check["verdict"] == "unstable" else ("retimed" if len(attempts) > 1 else "stable")
    return samples, paired, wall, {**check, "verdict": verdict, "attempts": attempts, "timing_s": timing_s}


def pairs_per_process(lat: LatencySettings) -> tuple[int, int]:
    """(pairs, blocks) one process times: the matrix's, shared among ``latency.processes`` processes
    (rounded up), so that replication costs processes, not timing (the gate pools them)."""
    processes = max(1, lat.processes)
    pairs = -(-lat.pairs // processes)
    return pairs, min(pairs, -(-lat.blocks // processes))


def _gate(case: Any, paired: dict[str, Any], state: Any, recipe: str | None) -> dict[str, Any] | None:
    """The gate's latency decision against the baseline's record of this case, if any."""
    from resnetbench.records import lookup
    from resnetbench.stats import decide_blocks, normalized_blocks

    base = state.baseline_case(case.id)
    if base is None or state.config.latency.processes > 1:
        # With several processes the end-of-run comparison decides on all of them: one process
        # alone is the over-confident estimate the replicas exist to avoid (stats.decide_processes).
        return None
    if lookup(base, "latency", "runtime", "recipe") not in (None, recipe):
        return None  # the reference follows the recipe: the end-of-run comparison names the change
    base_blocks, cur_blocks = normalized_blocks(base.get("latency")), normalized_blocks({"paired": paired})
    if base_blocks is None or cur_blocks is None:
        return None  # the end-of-run comparison says why (no paired timings in the baseline)
    return decide_blocks(base_blocks, cur_blocks, threshold=state.gate_threshold())
