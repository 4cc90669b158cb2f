"""The suite ``pytest --matrix`` runs: size, accuracy and latency of each case, and the guide's claims.

The ``case`` parameter is session-scoped, so the three tests of one case run together
and share one build (``built``); the next case's build replaces it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from resnetbench import quiet
from resnetbench.formulas import GUIDE_PARAMS_M, SPECS, TORCHVISION_PARAMS, count_resnet


def _skip_reason(case: Any) -> str | None:
    from resnetbench.backends import get_backend
    from resnetbench.compress import unsupported_dtype

    return unsupported_dtype(case.compression, case.dtype) or get_backend(case.backend).unsupported(case)


def _skip_unless_runnable(case: Any, state: Any) -> None:
    """Skip a test that executes the artifact where it would be pathologically slow or cannot run."""
    from resnetbench.backends import get_backend

    backend = get_backend(case.backend)
    reason = backend.slow_reason(case, state.config.allow_slow) or backend.cannot_run_here(case)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def built(case: Any, run_state: Any, request: pytest.FixtureRequest) -> Any:
    """The case's model, artifact and runner, made once (or taken from the cache).

    After the case's tests, plugins may add to its record (``pytest_resnetbench_case_record``).
    """
    reason = _skip_reason(case)
    record = run_state.record(case)
    if reason:
        record.reason = reason
        pytest.skip(reason)
    from resnetbench.build import build_case

    with quiet.shared(run_state.cache.root) as hold:
        # Recipes are timed inside the build (tuning.py): alone, like every timing. A run that only
        # sizes the case (-m size) never executes the artifact, so it has no recipe to choose.
        b = build_case(run_state.config, case, run_state.cache, run_state.threads,
                       tune=(tune := _executes_artifact(case, request.session)), timing_lock=hold.exclusive,
                       phase=lambda name: run_state.phase(case, name))
    if not tune:
        b.tuning = {**b.tuning, "how": "not chosen: this run only sizes the case (no selected test executes it)"}
    record.conversion = b.conversion
    record.compression_info = b.compression_info
    record.artifact = {"dir": str(b.entry), "kind": type(b).__name__, "runtime": b.meta.get("runtime", {}),
                       "tuning": b.tuning}
    record.notes = b.notes
    yield b
    request.config.hook.pytest_resnetbench_case_record(case=case, record=record, built=b)
    run_state.write()


def _executes_artifact(case: Any, session: pytest.Session) -> bool:
    """Whether a selected test of ``case`` other than ``test_size`` runs in this session."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        other = getattr(callspec, "params", {}).get("case")
        if getattr(other, "id", None) == case.id and getattr(item, "originalname", None) != "test_size":
            return True
    return False


def run_batches(built: Any, images: torch.Tensor) -> torch.Tensor:
    """Logits for all images, in chunks of the case's batch (the last one padded)."""
    batch = built.case.batch
    outs = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = torch.cat([chunk, chunk[:1].expand(batch - n, *chunk.shape[1:])])
        out = built.runner.to_logits(built.runner.run(built.runner.prepare(chunk)))
        outs.append(out[:n])
    return torch.cat(outs)


@pytest.mark.size
def test_size(case: Any, built: Any, run_state: Any) -> None:
    from resnetbench.backends.size import explain, size_record
    from resnetbench.records import SizeRecord

    run_state.phase(case, "size")

    inv = built.inventory
    scheme = built.method.quantization if case.dtype == "int8" else None
    rec = size_record(inv, built.backend.size_formula(inv, case.dtype, scheme), built.files, case.size_tolerance)
    run_state.record(case).size = SizeRecord.from_dict(rec)
    spec = SPECS.get(case.arch)
    if spec is not None and not built.method.removes_parameters:
        classes = built.fp32_model.fc.out_features
        closed_form = count_resnet(spec, classes).params
        assert inv.params == closed_form, f"{case.arch}: {inv.params:,} params, closed form says {closed_form:,}"
        if classes == 1000:
            assert inv.params == TORCHVISION_PARAMS[case.arch]
            assert round(inv.params / 1e6, 1) == GUIDE_PARAMS_M[case.arch]
    if built.method.removes_parameters:
        full = count_resnet(spec, built.fp32_model.fc.out_features).params if spec else None
        rec["params_before_pruning"] = full
        run_state.record(case).size = SizeRecord.from_dict(rec)
        assert full is None or inv.params < full, "structured pruning left the parameter count unchanged"
    if not rec["within_tolerance"]:
        pytest.fail(f"{case.id}: size: {explain(rec)}", pytrace=False)


@pytest.mark.accuracy
def test_accuracy(case: Any, built: Any, run_state: Any) -> None:
    from resnetbench.measure.accuracy import evaluate
    from resnetbench.measure.accuracy_reference import reference_for
    from resnetbench.records import AccuracyRecord

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "accuracy")
    with quiet.shared(run_state.cache.root):
        ref = reference_for(run_state.config, case, run_state.cache, run_state.memo)
        out, outputs_cached = _case_outputs(built, ref.inputs, run_state)
    rec = run_state.record(case)
    expected_shape = tuple(ref.logits.shape)
    if tuple(out.shape) != expected_shape:
        rec.accuracy = AccuracyRecord(verdict="failed", message=f"output shape {tuple(out.shape)} != {expected_shape}")
        pytest.fail(f"{case.id}: output shape {tuple(out.shape)}, expected {expected_shape}", pytrace=False)
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        rec.accuracy = AccuracyRecord(verdict="failed", message=f"{bad} non-finite outputs (NaN/Inf)")
        pytest.fail(f"{case.id}: {bad} outputs are NaN or Inf", pytrace=False)
    result = evaluate(out, ref.logits, case.tolerances, ref.inputs.labels, ref.fp32_logits, case.dtype)
    result["reference"] = ref.kind
    result["outputs_cached"] = outputs_cached
    result["dataset"] = ref.inputs.describe()
    rec.accuracy = AccuracyRecord.from_dict(result)
    if result["degenerate"]:
        rec.note(f"{result['degenerate']}: agreement metrics not used")
    # Fail closed: an accuracy test that cannot decide is not a pass.
    if result["verdict"] != "passed":
        pytest.fail(f"{case.id}: accuracy {result['verdict']}: {result['message']}", pytrace=False)


def _case_outputs(built: Any, inputs: Any, run_state: Any) -> tuple[torch.Tensor, bool]:
    """The case's logits on the accuracy inputs, and whether they came from the cache.

    They are deterministic in what the key names: the artifact (its cache entry, whose key
    holds the libraries, the backend's code and every setting), the recipe it runs with, the runner's class and code
    (a wrapped or patched runner is another key), the input tensor, the threads and the
    machine. A warm run reads them; ``--fresh-outputs`` runs the artifact regardless.
    """
    from resnetbench.build import code_version
    from resnetbench.measure.accuracy_reference import inputs_digest

    if run_state.fresh_outputs:
        return run_batches(built, inputs.images), False
    runner = type(built.runner)
    desc = {
        "artifact": built.entry.name,
        "runner": f"{runner.__module__}.{runner.__qualname__}",
        "code": code_version(runner.__module__, __name__),
        "methods": _methods_digest(built.runner),
        # the recipe the artifact runs with (tuning.py): another recipe may compute other bits
        "recipe": built.tuning.get("recipe"),
        "inputs_sha256": inputs_digest(inputs, run_state.memo),
        "threads": run_state.threads,
        "machine": (run_state.environment.get("fingerprint") or {}).get("hash"),
    }

    def build(out: Any) -> dict[str, Any]:
        torch.save(run_batches(built, inputs.images), out / "outputs.pt")
        return {"files": ["outputs.pt"]}

    entry, meta = run_state.cache.get_or_build("outputs", built.case.id, desc, build)
    logits = torch.load(entry / "outputs.pt", weights_only=True)  # tensors only, never code
    return logits, bool(meta["cached"])


def _methods_digest(runner: Any) -> str:
    """A hash of the bytecode the runner's prepare/run/to_logits execute: a method patched at
    run time (a conftest, a plugin) is another key, not a cache hit."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("prepare", "run", "to_logits"):
        fn = getattr(runner, name)
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        digest.update(f"{name}:{getattr(fn, '__qualname__', type(fn).__name__)}".encode())
        if code is not None:
            digest.update(code.co_code + repr(code.co_consts).encode())
    return digest.hexdigest()[:16]


@pytest.mark.latency
def test_latency(case: Any, built: Any, run_state: Any, benchmark: Any) -> None:
    from resnetbench.measure.latency import roofline, summarize
    from resnetbench.measure.stability import cause
    from resnetbench.records import LatencyRecord
    from resnetbench.roof import roof_for

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "timing")
    cfg = run_state.config
    benchmark.extra_info.update({"case": case.id, "threads": run_state.threads})
    with quiet.shared(run_state.cache.root):
        reference = _reference(case, built, run_state)
        flops = _flops(case, built, run_state)
        outputs = _timed_output_check(case, built, run_state)
    native = outputs.natives[0]  # the reference pairs time the case on the first batch
    # No other worker builds, evaluates or times while this case is timed; ForeignLoad sees the rest.
    with quiet.exclusive(run_state.cache.root), quiet.ForeignLoad() as foreign:
        samples, paired, wall, stability = _time_until_stable(built, native, reference, run_state, benchmark, outputs)
        gate = _gate(case, paired, run_state, built.tuning.get("recipe")) if stability["verdict"] != "unstable" else None
        if gate is not None and gate["decision"] == "inconclusive":
            # Too noisy to decide: time twice the pairs again and decide on those.
            from resnetbench.measure.latency_reference import time_pairs

            lat = cfg.latency
            start = time.perf_counter()
            paired = {**time_pairs(reference, built.runner.run, native, 2 * lat["pairs"]),
                      "blocks": 2 * lat["blocks"], "reference_key": reference.key,
                      "recipe": reference.recipe}
            stability["timing_s"] += time.perf_counter() - start
            rerun = _gate(case, paired, run_state, built.tuning.get("recipe"))  # the same baseline: not None when the first was not
            assert rerun is not None
            gate = {**rerun, "rerun": True}
        # A pass of its own, after the timing and still alone: the profiler never runs in the timed loop.
        profile = _profile(case, built, run_state, outputs.inputs[0]) if cfg.profile and not run_state.replica else None
    rec = summarize(samples, case.batch)
    env = run_state.environment
    # The roof of the arithmetic the case's convolutions run (int8 against int8's), not of its dtype's name.
    roof_dtype = built.backend.compute_dtype(case)
    roof_gflops, roof_basis = roof_for(env.get("roofs") or {}, roof_dtype)
    rec.update(
        {
            **flops,
            "flops_note": "FLOPs of the fp32 graph (1 MAC = 2 FLOPs), counted by torch.utils.flop_counter",
            **roofline(flops["flops"], rec["median_ms"], roof_gflops),
            "roof_dtype": roof_dtype,
            "peak_basis": roof_basis,
            "warmup": cfg.latency["warmup"],
            "paired": paired,
            "stability": stability,
            "threads": run_state.threads,
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
        }
    )
    if stability["verdict"] == "unstable" or stability["machine"]["verdict"] == "disturbed":
        stability["cause"] = cause(foreign.cores, foreign.steal_cores)
    run_state.record(case).latency = LatencyRecord.from_dict(rec)
    if foreign.alone is False:
        run_state.record(case).note(f"latency timed beside other load: {foreign.cores} cores busy elsewhere")
    if stability["verdict"] == "unstable":
        run_state.record(case).note(f"latency unstable after {len(stability['attempts'])} timings: "
                                    f"{'; '.join(stability['reasons'])} ({stability['cause']})")
    elif stability["machine"]["verdict"] == "disturbed":
        run_state.record(case).note(f"latency figures taken on a disturbed machine: "
                                    f"{'; '.join(stability['machine']['reasons'])} ({stability['cause']}); "
                                    "the paired ratio the gate compares stayed stable")
    checked = rec["timed_outputs"]
    if checked["verdict"] != "passed":
        # Fail closed: a timing whose outputs were wrong (or could not be checked) measured something else.
        pytest.fail(f"{case.id}: outputs of the timed calls {checked['verdict']}: {checked['reason']}", pytrace=False)
    if gate is not None:
        run_state.record(case).latency.gate = gate
        if gate["decision"] == "regressed":
            pytest.fail(f"{case.id}: latency regressed against the baseline: {gate['reason']}", pytrace=False)


def _flops(case: Any, built: Any, run_state: Any) -> dict[str, int]:
    """FLOPs of the case's fp32 graph, counted once and kept in the artifact cache (deterministic)."""
    from resnetbench.build import base_description, code_version, settings_for
    from resnetbench.measure.latency import count_flops

    cfg = run_state.config
    # what the compressed model's structure depends on, as its own cache entry (build.compressed_model)
    prepare = built.method.prepare
    desc = {**base_description(cfg, case.arch), "compression": case.compression, "settings": settings_for(case),
            "dataset": cfg.dataset.to_dict(), "batch": case.batch,
            "code": code_version("resnetbench.measure.latency", *([prepare.__module__] if prepare else []))}
    key = ("flops", repr(desc))
    if key not in run_state.memo:
        sample = torch.randn(case.batch, 3, cfg.input_size, cfg.input_size)
        _, meta = run_state.cache.get_or_build(
            "flops", f"{case.arch}-{case.compression}-b{case.batch}", desc,
            lambda out: {"files": [], **count_flops(built.fp32_model, sample)})
        run_state.memo[key] = {"flops": int(meta["flops"]), "macs": int(meta["macs"])}
    return run_state.memo[key]


def _reference(case: Any, built: Any, run_state: Any) -> Any:
    """The latency reference in the case's arithmetic family on its backend, running the case's
    recipe (``measure/latency_reference.py``), loaded once per run."""
    from resnetbench.measure.latency_reference import family, reference_for

    cfg = run_state.config
    recipe = built.tuning.get("recipe")
    key = ("reference", case.backend, case.batch, cfg.input_size, family(case.dtype, case.compression), recipe)
    if key not in run_state.memo:
        run_state.memo[key] = reference_for(case.backend, case.batch, cfg.input_size, run_state.threads,
                                            run_state.cache, case.dtype, case.compression, recipe)
    return run_state.memo[key]


def _profile(case: Any, built: Any, run_state: Any, x: torch.Tensor) -> dict[str, Any]:
    """The backend's per-unit profile of the case (``backends/profile.py``), or why there is none."""
    from resnetbench.backends.base import DEFAULT_RECIPE

    run_state.phase(case, "profile")
    name = built.tuning.get("recipe")
    recipe = next((r for r in built.backend.recipes(built.case) if r.name == name), DEFAULT_RECIPE)
    try:
        profile = built.backend.profile(built.runner, x, model=built.model, entry=built.entry, meta=built.meta,
                                        threads=run_state.threads, recipe=recipe,
                                        calls=int(run_state.config.profile["calls"]))
    except Exception as exc:  # a profiler that fails leaves the latency figure intact, with the reason
        return {"units": [], "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    if profile is None:
        return {"units": [], "error": f"{case.backend} has no profiler wired in"}
    return profile


def _timed_output_check(case: Any, built: Any, run_state: Any) -> Any:
    """The check of every timed call's output against the accuracy pass's (``measure/timed_outputs.py``)."""
    from resnetbench.measure.accuracy_reference import accuracy_inputs
    from resnetbench.measure.timed_outputs import TimedOutputCheck, aligned_batches, wrapped_batches

    inputs = accuracy_inputs(run_state.config, run_state.memo)
    logits, _ = _case_outputs(built, inputs, run_state)
    batches = aligned_batches(inputs.images, logits, case.batch)
    if len(batches) < 2:
        batches = wrapped_batches(inputs.images, case.batch, built.runner)
    return TimedOutputCheck.for_runner(built.runner, batches)


def _time_until_stable(built: Any, native: Any, reference: Any, run_state: Any, benchmark: Any,
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
    from resnetbench.measure.latency import own_loop
    from resnetbench.measure.latency_reference import time_pairs
    from resnetbench.measure.stability import assess

    lat = run_state.config.latency
    pairs, blocks = pairs_per_process(lat)
    best = run_state.memo.setdefault("reference-best-ms", {})
    attempts: list[dict[str, Any]] = []
    timing_s = 0.0
    for attempt in range(1 + lat.get("retimes", 0)):
        if attempt:
            time.sleep(RETIME_PAUSE_S)  # let whatever loaded the machine pass
        start = time.perf_counter()
        if run_state.replica:
            own_loop(outputs.call, None, 0, REPLICA_CHECKED_CALLS, setup=outputs.next_args)
        elif attempt == 0 and not benchmark.disabled:
            # pytest-benchmark's own loop for the first timing; it allows one pedantic call per test.
            # Each call gets the next input batch from ``outputs.next_args`` (untimed), which
            # also checks the previous call's output.
            benchmark.pedantic(outputs.call, setup=outputs.next_args, warmup_rounds=lat["warmup"],
                               rounds=lat["rounds"], iterations=1)
            samples = [s * 1e3 for s in benchmark.stats.stats.data]
        else:
            samples = own_loop(outputs.call, None, lat["warmup"], lat["rounds"], setup=outputs.next_args)
        outputs.finish()
        wall = time.perf_counter() - start
        paired = {**time_pairs(reference, built.runner.run, native, pairs),
                  "blocks": blocks, "reference_key": reference.key, "recipe": reference.recipe}
        if run_state.replica:
            samples = list(paired["case_ms"])
        timing_s += time.perf_counter() - start
        check = assess(samples, paired["reference_ms"], best.get(reference.key), paired["case_ms"])
        quiet_machine = check["machine"]["verdict"] == "quiet"
        # per attempt: unstable (the compared ratio), disturbed (only the machine's speed), stable
        this = "unstable" if check["verdict"] == "unstable" else ("stable" if quiet_machine else "disturbed")
        attempts.append({"verdict": this, "reasons": check["reasons"] + check["machine"]["reasons"],
                         "figures": check["figures"], "median_ms": float(sorted(samples)[len(samples) // 2])})
        if check["verdict"] == "stable" and (quiet_machine or run_state.replica):
            ref_median = sorted(paired["reference_ms"])[len(paired["reference_ms"]) // 2]
            best[reference.key] = min(best.get(reference.key, ref_median), ref_median)
            break
    # Re-timed while either the ratio or the machine was unsteady; only the ratio makes a verdict.
    verdict = "unstable" if check["verdict"] == "unstable" else ("retimed" if len(attempts) > 1 else "stable")
    return samples, paired, wall, {**check, "verdict": verdict, "attempts": attempts, "timing_s": timing_s}


RETIME_PAUSE_S = 2.0
REPLICA_CHECKED_CALLS = 3


def pairs_per_process(lat: dict[str, Any]) -> tuple[int, int]:
    """(pairs, blocks) one process times: the matrix's, shared among ``latency.processes`` processes
    (rounded up), so that replication costs processes, not timing (the gate pools them)."""
    processes = max(1, int(lat.get("processes", 1)))
    pairs = -(-int(lat["pairs"]) // processes)
    return pairs, min(pairs, -(-int(lat["blocks"]) // processes))


def _gate(case: Any, paired: dict[str, Any], run_state: Any, recipe: str | None) -> dict[str, Any] | None:
    """The gate's latency decision against the baseline's record of this case, if any."""
    from resnetbench.stats import decide_blocks, normalized_blocks

    base = run_state.baseline_case(case.id)
    if base is None or int(run_state.config.latency.get("processes", 1)) > 1:
        # With several processes the end-of-run comparison decides on all of them: one process
        # alone is the over-confident estimate the replicas exist to avoid (stats.decide_processes).
        return None
    from resnetbench.records import lookup

    if lookup(base, "latency", "runtime", "recipe") not in (None, recipe):
        return None  # the reference follows the recipe: the end-of-run comparison names the change
    base_blocks, cur_blocks = normalized_blocks(base.get("latency")), normalized_blocks({"paired": paired})
    if base_blocks is None or cur_blocks is None:
        return None  # the end-of-run comparison says why (no paired timings in the baseline)
    return decide_blocks(base_blocks, cur_blocks, threshold=run_state.gate_threshold())


@pytest.mark.deployment
def test_deployment(case: Any, built: Any, run_state: Any) -> None:
    """Cold start and memory in fresh processes (``measure/deployment.py``), alone on the machine."""
    from resnetbench.measure.deployment import DeploymentError, measure

    _skip_unless_runnable(case, run_state)
    run_state.phase(case, "deployment")
    cfg = run_state.config
    with quiet.exclusive(run_state.cache.root):
        try:
            result = measure(cfg.path, case.id, run_state.cache.root, run_state.threads, built.tuning["recipe"],
                             runs=int(cfg.deployment["runs"]))
        except DeploymentError as exc:
            pytest.fail(str(exc), pytrace=False)
    run_state.record(case).deployment = result


@pytest.mark.claims
def test_claim(claim: str, run_state: Any) -> None:
    from resnetbench.claims import CLAIMS

    with quiet.shared(run_state.cache.root):
        result = CLAIMS[claim](run_state.cache)
    run_state.claims[claim] = result.to_dict()
    run_state.write()
    for what, measured, known in result.checks:
        assert measured == known, f"{claim}: {what}: measured {measured}, independently known {known}"
    assert result.verdict == result.expected_verdict, (
        f"{claim}: verdict {result.verdict} but the project expects {result.expected_verdict}: "
        f"stated {result.stated}, measured {result.measured}"
    )
