"""``resnetbench bench-backends``: is the suite's own latency path as fast as an expert's loop?

For one architecture (default ResNet-50, fp32 or ``--dtype bf16``, batch 1, 224x224) and every CPU backend
that is installed, in one process:

- **suite**: ``build.build_case`` (through the artifact cache, as the suite builds it,
  with the recipe tuning chose for the artifact: ``tuning.py``, paid on the first run
  only), ``runner.prepare`` once, then ``runner.run`` timed by pytest-benchmark's own
  ``BenchmarkFixture.pedantic(iterations=1)`` -- the call ``test_latency`` makes (see
  ``gatecheck.pedantic_samples``);
- **hand**: a loop written directly against the library, tuned the way an expert
  would: a few candidate configurations per backend are built and timed briefly
  (``tune_rounds``), and the fastest one is kept. Each candidate's loop is the minimal
  ``perf_counter`` loop around one library call on an input prepared once.

Then suite and hand blocks alternate (suite, hand, hand, suite, ... for every backend in
each repetition) so that machine drift lands on both sides alike, and the medians of all
samples are compared: per backend ``suite/hand`` (target: the median of the
per-repetition ratios <= 1.05) and overall
``best suite / best hand`` (target <= 1.05).

The cache check builds a 20-case matrix (5 backends x fp32/bf16 x batch 1/2 of a small
model) through ``build_case`` twice, each in a fresh process, into a fresh cache
directory (torch inductor's own on-disk cache is pointed there too, so the first pass is
cold); the second pass must be at least 3x faster. Imports are done before the clock
starts in both passes.

Example::

    resnetbench bench-backends --json reports/bench-backends.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnetbench.config import LATENCY_DEFAULTS
from resnetbench.results import write_atomic
from resnetbench.tools.gatecheck import pedantic_samples

CPU_BACKENDS = ("eager", "torchscript", "compile", "onnxruntime", "openvino")
REQUIRES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
TARGET_RATIO = 1.05  # suite / hand, the median of the per-repetition ratios
TARGET_BEST = 1.05
TARGET_CACHE_SPEEDUP = 3.0

Loop = Callable[[int, int], list[float]]


# --------------------------------------------------------------------------- hand-written loops


def timed(call: Callable[[], Any], warmup: int, rounds: int) -> list[float]:
    """The minimal loop: ``warmup`` calls, then milliseconds of each of ``rounds`` calls.

    Deliberately not ``measure.latency.own_loop``, although it is the same few lines: the
    hand side is the yardstick the suite's latency path is checked against, so it must
    not share code with that path (``own_loop`` is what ``test_latency`` times re-timings
    and ``--benchmark-disable`` runs with, and ``gatecheck.pedantic_samples``' fallback):
    overhead that crept into the suite's loop would land on both sides and cancel.
    """
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def torch_loop(module: Any, x: Any, post: Callable[[Any], Any] | None = None) -> Loop:
    """A loop over ``module(x)`` with inference mode entered once around the whole loop."""
    import torch

    def loop(warmup: int, rounds: int) -> list[float]:
        with torch.inference_mode():
            if post is None:
                return timed(lambda: module(x), warmup, rounds)
            return timed(lambda: post(module(x)), warmup, rounds)

    return loop


@dataclass
class Candidate:
    """One hand-written configuration: a name, and how to build its loop."""

    name: str
    build: Callable[[], Loop]


def _at(model: Any, x: Any, dtype: str) -> tuple[Any, Any]:
    """A private copy of the fp32 model and input at ``dtype`` (fp32 or bf16)."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    return copy.deepcopy(model).eval().to(dt), x.to(dt)


def eager_candidates(model: Any, x: Any, threads: int, workdir: Path, dtype: str) -> Iterator[Candidate]:
    """nn.Module in inference_mode: contiguous, channels-last, and oneDNN (mkldnn) tensors."""
    import torch

    def contiguous() -> Loop:
        m, xi = _at(model, x, dtype)
        return torch_loop(m, xi.contiguous())

    def channels_last() -> Loop:
        m, xi = _at(model, x, dtype)
        return torch_loop(m.to(memory_format=torch.channels_last), xi.contiguous(memory_format=torch.channels_last))

    def mkldnn() -> Loop:
        from torch.utils import mkldnn as mkldnn_utils

        m, xi = _at(model, x, dtype)
        m = mkldnn_utils.to_mkldnn(m, dtype=xi.dtype)
        return torch_loop(m, xi.to_mkldnn(), post=lambda out: out.to_dense() if out.is_mkldnn else out)

    yield Candidate("inference_mode, contiguous", contiguous)
    yield Candidate("inference_mode, channels_last", channels_last)
    yield Candidate("inference_mode, to_mkldnn", mkldnn)


def torchscript_candidates(model: Any, x: Any, threads: int, workdir: Path, dtype: str) -> Iterator[Candidate]:
    """torch.jit.trace + freeze, saved and torch.jit.load-ed; contiguous, channels-last, optimize_for_inference."""
    import torch

    def traced(channels_last: bool, optimize: bool) -> Loop:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        m, xi = _at(model, x, dtype)
        m = m.to(memory_format=fmt)
        xi = xi.contiguous(memory_format=fmt)
        with torch.inference_mode():
            frozen = torch.jit.freeze(torch.jit.trace(m, xi, check_trace=False))
            if optimize:
                frozen = torch.jit.optimize_for_inference(frozen)
        if optimize:  # its prepacked oneDNN ops do not survive torch.jit.save/load: run it in memory
            return torch_loop(frozen, xi)
        path = workdir / f"ts-{int(channels_last)}.pt"
        torch.jit.save(frozen, str(path))
        return torch_loop(torch.jit.load(str(path), map_location="cpu"), xi)

    yield Candidate("trace+freeze, contiguous", lambda: traced(False, False))
    yield Candidate("trace+freeze, channels_last", lambda: traced(True, False))
    yield Candidate("trace+freeze+optimize_for_inference", lambda: traced(False, True))
    yield Candidate("trace+freeze+optimize_for_inference, channels_last", lambda: traced(True, True))


def compile_candidates(model: Any, x: Any, threads: int, workdir: Path, dtype: str) -> Iterator[Candidate]:
    """torch.compile (inductor) with freezing, contiguous and channels-last."""
    import torch
    import torch._inductor.config as inductor_config

    def compiled(channels_last: bool) -> Loop:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        m, xi = _at(model, x, dtype)
        m = m.to(memory_format=fmt)
        xi = xi.contiguous(memory_format=fmt)
        c = torch.compile(m, backend="inductor", dynamic=False)
        with inductor_config.patch(freezing=True), torch.inference_mode():
            c(xi)  # compiles here, under the patched config
        return torch_loop(c, xi)

    yield Candidate("inductor freezing, contiguous", lambda: compiled(False))
    yield Candidate("inductor freezing, channels_last", lambda: compiled(True))


def _export_static_onnx(model: Any, x: Any, path: Path) -> Path:
    """torch.onnx.export (dynamo) with every shape static: batch 1 fixed."""
    import contextlib
    import io

    import torch

    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            copy.deepcopy(model).eval(),
            (x,),
            str(path),
            dynamo=True,
            opset_version=18,
            input_names=["input"],
            output_names=["logits"],
            external_data=True,
            verbose=False,
        )
    return path


def onnxruntime_candidates(model: Any, x: Any, threads: int, workdir: Path, dtype: str) -> Iterator[Candidate]:
    """InferenceSession, ORT_ENABLE_ALL, intra-op = threads, inter-op 1, sequential; run() and IOBinding."""
    import numpy as np
    import onnxruntime as ort

    onnx_path: list[Path] = []

    def session() -> Any:
        if not onnx_path:
            onnx_path.append(_export_static_onnx(model, x, workdir / "static.onnx"))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return ort.InferenceSession(str(onnx_path[0]), so, providers=["CPUExecutionProvider"])

    def plain() -> Loop:
        sess = session()
        feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x.numpy())}
        return lambda warmup, rounds: timed(lambda: sess.run(None, feed), warmup, rounds)

    def iobinding() -> Loop:
        sess = session()
        binding = sess.io_binding()
        arr = np.ascontiguousarray(x.numpy())
        binding.bind_cpu_input(sess.get_inputs()[0].name, arr)
        out = np.empty((x.shape[0], 1000), dtype=np.float32)
        binding.bind_output(sess.get_outputs()[0].name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        buffers = (arr, out)  # ORT holds raw pointers into these: they must outlive the loop

        def loop(warmup: int, rounds: int) -> list[float]:
            assert buffers
            return timed(lambda: sess.run_with_iobinding(binding), warmup, rounds)

        return loop

    yield Candidate("static-shape ONNX, ENABLE_ALL, run()", plain)
    yield Candidate("static-shape ONNX, ENABLE_ALL, IOBinding", iobinding)


def openvino_candidates(model: Any, x: Any, threads: int, workdir: Path, dtype: str) -> Iterator[Candidate]:
    """ov.convert_model straight from PyTorch, compile_model(CPU, LATENCY, f32 or bf16, threads), tensors set once."""
    import numpy as np
    import openvino as ov

    converted: list[Any] = []

    def compiled(extra: dict[str, Any]) -> Loop:
        if not converted:
            converted.append(ov.convert_model(copy.deepcopy(model).eval(), example_input=x, input=[list(x.shape)]))
        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "bf16" if dtype == "bf16" else "f32",
            **extra,
        }
        cm = core.compile_model(converted[0], "CPU", config)
        request = cm.create_infer_request()
        request.set_input_tensor(ov.Tensor(np.ascontiguousarray(x.numpy()), shared_memory=True))
        return lambda warmup, rounds: timed(request.infer, warmup, rounds)

    yield Candidate("LATENCY hint, threads", lambda: compiled({}))
    yield Candidate("LATENCY hint, threads, 1 stream, pinned", lambda: compiled({"NUM_STREAMS": 1, "ENABLE_CPU_PINNING": True}))


# Backends that compute bf16 as bf16 (ONNX Runtime's CPU EP stores bf16 weights but computes fp32).
HAND_DTYPES = {"onnxruntime": ("fp32",)}
HAND: dict[str, Callable[..., Iterator[Candidate]]] = {
    "eager": eager_candidates,
    "torchscript": torchscript_candidates,
    "compile": compile_candidates,
    "onnxruntime": onnxruntime_candidates,
    "openvino": openvino_candidates,
}


@dataclass
class Tuned:
    """The fastest hand candidate of a backend, and what every candidate measured."""

    name: str
    loop: Loop
    trials: dict[str, Any] = field(default_factory=dict)
    setup_s: float = 0.0


def tune(
    backend: str,
    model: Any,
    x: Any,
    threads: int,
    workdir: Path,
    rounds: int,
    progress: Callable[[str], None],
    reps: int = 3,
    dtype: str = "fp32",
) -> Tuned | None:
    """Build every hand candidate, time them interleaved ``reps`` times, keep the fastest.

    Interleaving (A B C, A B C, ...) keeps machine drift from picking the winner; a
    candidate's score is the median of its per-repetition medians. None when none builds.
    """
    loops: dict[str, Loop] = {}
    trials: dict[str, Any] = {}
    start = time.perf_counter()
    for cand in HAND[backend](model, x, threads, workdir, dtype):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # torch 2.14 deprecates torch.jit; the hand loops use it on purpose
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                loop = cand.build()
            loop(3, 1)
        except Exception as exc:  # a candidate this library version rejects is skipped, not fatal
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            trials[cand.name] = {"error": f"{type(exc).__name__}: {text}"}
            progress(f"{backend} hand candidate {cand.name!r} failed: {trials[cand.name]['error']}")
            continue
        loops[cand.name] = loop
        trials[cand.name] = {"build_s": time.perf_counter() - t0, "medians_ms": []}
    if not loops:
        return None
    for _ in range(reps):
        for name, loop in loops.items():
            trials[name]["medians_ms"].append(statistics.median(loop(2, rounds)))
    for name in loops:
        trials[name]["median_ms"] = statistics.median(trials[name]["medians_ms"])
        progress(f"{backend} hand candidate {name!r}: {trials[name]['median_ms']:.2f} ms")
    best = min(loops, key=lambda name: trials[name]["median_ms"])
    tuned = Tuned(best, loops[best], trials, time.perf_counter() - start)
    loops.clear()
    gc.collect()
    return tuned


# --------------------------------------------------------------------------- the comparison


def installed(backend: str) -> bool:
    """Whether the backend's Python packages are importable."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in REQUIRES.get(backend, ()))


def ratio_ok(ratio: float) -> bool:
    """The suite may not be slower than the best hand loop by more than the target; faster is fine."""
    return ratio <= TARGET_RATIO


def compare_blocks(suite: list[list[float]], hand: list[list[float]]) -> dict[str, Any]:
    """Medians over all blocks, their ratio, and the median of per-repetition ratios."""
    s_all = [v for block in suite for v in block]
    h_all = [v for block in hand for v in block]
    s_med, h_med = statistics.median(s_all), statistics.median(h_all)
    per_rep = [statistics.median(s) / statistics.median(h) for s, h in zip(suite, hand, strict=True)]
    return {
        "suite_median_ms": s_med,
        "hand_median_ms": h_med,
        "ratio": s_med / h_med,
        "ratio_per_rep": per_rep,
        "ratio_rep_median": statistics.median(per_rep),
        "ratio_ok": ratio_ok(statistics.median(per_rep)),
    }


def _timed_output_check(runner: Any, input_size: int) -> Any:
    """The suite's timed path (``test_latency``): rotating inputs, every output checked outside the timer.

    The expected outputs are the runner's own on 4 seeded images (the suite takes its
    accuracy pass's outputs; bench-backends has no accuracy pass).
    """
    import torch

    from resnetbench.measure.timed_outputs import TimedOutputCheck

    images = torch.randn(4, 3, input_size, input_size, generator=torch.Generator().manual_seed(1))
    batches = []
    for i in range(len(images)):
        native = runner.prepare(images[i : i + 1])
        batches.append((images[i : i + 1], runner.to_logits(runner.run(native)).float().clone()))
    return TimedOutputCheck.for_runner(runner, batches)


def best_of(per_backend: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fastest suite backend against the fastest hand loop (any backend).

    Judged as each backend is: the median over repetitions of that repetition's suite
    median over its hand median (blocks of one repetition ran seconds apart, so a slow
    spell of the machine lands on both), with the pooled ratio beside it.
    """
    suite_b = min(per_backend, key=lambda b: per_backend[b]["suite_median_ms"])
    hand_b = min(per_backend, key=lambda b: per_backend[b]["hand_median_ms"])
    pooled = per_backend[suite_b]["suite_median_ms"] / per_backend[hand_b]["hand_median_ms"]
    suite_blocks = per_backend[suite_b].get("suite_samples_ms")
    hand_blocks = per_backend[hand_b].get("hand_samples_ms")
    ratio = pooled
    if suite_blocks and hand_blocks:
        ratio = statistics.median(statistics.median(s) / statistics.median(h)
                                  for s, h in zip(suite_blocks, hand_blocks, strict=True))
    return {"suite_backend": suite_b, "hand_backend": hand_b, "ratio": ratio, "pooled_ratio": pooled,
            "ok": ratio <= TARGET_BEST}


def bench_backends(
    arch: str = "resnet50",
    input_size: int = 224,
    backends: Sequence[str] = CPU_BACKENDS,
    rounds: int = LATENCY_DEFAULTS["rounds"],
    warmup: int = LATENCY_DEFAULTS["warmup"],
    reps: int = 5,
    tune_rounds: int = 10,
    cache_dir: Path | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda msg: None,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Build suite runners and tuned hand loops, then time them interleaved (see module docstring)."""
    import torch

    from resnetbench.build import build_case
    from resnetbench.cache import ArtifactCache, default_cache_dir
    from resnetbench.config import Config
    from resnetbench.environment import default_threads, set_threads
    from resnetbench.matrix import Case

    threads = threads or default_threads()
    set_threads(threads)
    cache = ArtifactCache(cache_dir or default_cache_dir())
    config = Config(path=Path("<bench-backends>"), matrix={}, input_size=input_size)
    x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    skipped = {b: "not installed" for b in backends if not installed(b)}
    skipped.update({b: f"computes {dtype} models in another arithmetic: no {dtype} path to compare"
                    for b in backends if dtype not in HAND_DTYPES.get(b, ("fp32", "bf16")) and b not in skipped})
    work = tempfile.TemporaryDirectory(prefix="resnetbench-hand-")
    entries: dict[str, dict[str, Any]] = {}
    for backend in (b for b in backends if b not in skipped):
        t0 = time.perf_counter()
        built = build_case(config, Case(arch, dtype, "none", backend, 1), cache, threads)
        native = built.runner.prepare(x)
        build_s = time.perf_counter() - t0
        # As test_latency times it: each call on the next of 4 inputs, its output checked between calls.
        outputs = _timed_output_check(built.runner, input_size)
        quick = statistics.median(pedantic_samples(built.runner.run, native, 3, tune_rounds))
        progress(
            f"{backend} suite: built in {build_s:.1f} s (cached: {built.conversion.get('cached')}), ~{quick:.2f} ms"
        )
        tuned = tune(backend, built.fp32_model, x.clone(), threads, Path(work.name), tune_rounds, progress,
                     dtype=dtype)
        if tuned is None:
            skipped[backend] = "no hand-written candidate could be built"
            continue
        entries[backend] = {
            "runner": built.runner,
            "native": native,
            "outputs": outputs,
            "hand": tuned,
            "suite_build_s": build_s,
            "runtime": built.meta.get("runtime", {}),
            "tuning": built.tuning,
            "suite_quick_ms": quick,
            "suite": [],
            "hand_samples": [],
        }

    started = time.perf_counter()
    for rep in range(reps):
        for e in entries.values():
            order = ("suite", "hand") if rep % 2 == 0 else ("hand", "suite")
            for side in order:
                if side == "suite":
                    check = e["outputs"]
                    e["suite"].append(pedantic_samples(check.call, None, warmup, rounds, setup=check.next_args))
                    check.finish()
                else:
                    e["hand_samples"].append(e["hand"].loop(warmup, rounds))
        progress(f"repetition {rep + 1}/{reps} done ({time.perf_counter() - started:.0f} s)")
    work.cleanup()

    per_backend: dict[str, dict[str, Any]] = {}
    for backend, e in entries.items():
        per_backend[backend] = {
            **compare_blocks(e["suite"], e["hand_samples"]),
            "hand_variant": e["hand"].name,
            "hand_trials": e["hand"].trials,
            "suite_quick_ms": e["suite_quick_ms"],
            "suite_build_s": e["suite_build_s"],
            "suite_runtime": e["runtime"],
            "suite_timed_outputs": e["outputs"].verdict(),
            "suite_recipe": e["tuning"],
            "suite_samples_ms": e["suite"],
            "hand_samples_ms": e["hand_samples"],
        }
    return {
        "settings": {
            "arch": arch,
            "dtype": dtype,
            "batch": 1,
            "input_size": input_size,
            "rounds": rounds,
            "warmup": warmup,
            "reps": reps,
            "tune_rounds": tune_rounds,
            "threads": threads,
            "suite_timing": "pytest_benchmark BenchmarkFixture.pedantic(iterations=1)",
            "hand_timing": "perf_counter around one library call; medians of all samples",
        },
        "backends": per_backend,
        "skipped": skipped,
        "best": best_of(per_backend) if per_backend else None,
        "timing_s": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- cache check


def cache_matrix(arch: str = "resnet18") -> list[Any]:
    """The 20 cases of the cache check: 5 CPU backends x fp32/bf16 x batch 1/2."""
    from resnetbench.matrix import Case

    return [
        Case(arch, dtype, "none", backend, batch)
        for backend in CPU_BACKENDS
        for dtype in ("fp32", "bf16")
        for batch in (1, 2)
    ]


def cache_pass(root: str, arch: str = "resnet18", input_size: int = 64, threads: int | None = None) -> dict[str, Any]:
    """Build every case of ``cache_matrix`` through ``build_case`` into ``root``; seconds per case."""
    import importlib

    from resnetbench.backends import get_backend
    from resnetbench.build import build_case
    from resnetbench.cache import ArtifactCache
    from resnetbench.config import Config
    from resnetbench.environment import default_threads, set_threads

    threads = threads or default_threads()
    set_threads(threads)
    cases = cache_matrix(arch)
    skipped: dict[str, str] = {}
    for case in cases:  # imports and capability checks before the clock starts
        why = get_backend(case.backend).unsupported(case)
        if why:
            skipped[case.id] = why
        for module in REQUIRES.get(case.backend, ()):
            importlib.import_module(module)
    importlib.import_module("torch._dynamo")
    importlib.import_module("torch._inductor.config")
    cache = ArtifactCache(Path(root))
    config = Config(path=Path("<cache-check>"), matrix={}, input_size=input_size)
    per_case: dict[str, float] = {}
    start = time.perf_counter()
    for case in cases:
        if case.id in skipped:
            continue
        t0 = time.perf_counter()
        build_case(config, case, cache, threads)
        per_case[case.id] = time.perf_counter() - t0
    return {
        "seconds": time.perf_counter() - start,
        "per_case_s": per_case,
        "hits": cache.hits,
        "misses": cache.misses,
        "skipped": skipped,
    }


def cache_check(
    arch: str = "resnet18",
    input_size: int = 64,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Two fresh processes build the 20-case matrix into one fresh cache dir; the second's speedup."""
    with tempfile.TemporaryDirectory(prefix="resnetbench-cachecheck-") as root:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(root) / "inductor")}
        code = (
            "import json, sys; from resnetbench.tools.benchbackends import cache_pass; "
            "print('RESULT ' + json.dumps(cache_pass(sys.argv[1], sys.argv[2], int(sys.argv[3]), "
            "int(sys.argv[4]) or None)))"
        )
        passes = []
        for i in (1, 2):
            proc = subprocess.run(
                [sys.executable, "-c", code, str(Path(root) / "cache"), arch, str(input_size), str(threads or 0)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"cache pass {i} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
            passes.append(json.loads(lines[-1][len("RESULT ") :]))
            progress(
                f"cache pass {i}: {passes[-1]['seconds']:.1f} s ({passes[-1]['hits']} hits, {passes[-1]['misses']} builds)"
            )
    first, second = passes
    speedup = first["seconds"] / second["seconds"]
    slowest = sorted(second["per_case_s"].items(), key=lambda kv: -kv[1])[:5]
    by_backend: dict[str, list[float]] = {}
    for case in cache_matrix(arch):
        if case.id in first["per_case_s"] and case.id in second["per_case_s"]:
            pair = by_backend.setdefault(case.backend, [0.0, 0.0])
            pair[0] += first["per_case_s"][case.id]
            pair[1] += second["per_case_s"][case.id]
    return {
        "cases": len(first["per_case_s"]),
        "first": first,
        "second": second,
        "speedup": speedup,
        "target": TARGET_CACHE_SPEEDUP,
        "ok": speedup >= TARGET_CACHE_SPEEDUP,
        "second_slowest": slowest,
        "by_backend_s": by_backend,
    }


# --------------------------------------------------------------------------- the command


def format_report(result: dict[str, Any]) -> str:
    """The per-backend table and the overall verdicts as text."""
    s = result["settings"]
    lines = [
        f"bench-backends: {s['arch']} {s['dtype']} batch {s['batch']} at {s['input_size']}x{s['input_size']}, "
        f"{s['threads']} threads, {s['reps']} x (suite, hand) blocks of {s['warmup']} + {s['rounds']} calls"
    ]
    head = f"{'backend':<12} {'suite ms':>9} {'hand ms':>9} {'suite/hand':>10} {'per-rep':>8}  {'target':<11} hand loop"
    lines += [head, "-" * len(head)]
    for backend, b in result["backends"].items():
        lines.append(
            f"{backend:<12} {b['suite_median_ms']:>9.2f} {b['hand_median_ms']:>9.2f} {b['ratio']:>10.3f} "
            f"{b['ratio_rep_median']:>8.3f}  {'ok' if b['ratio_ok'] else 'MISSED':<11} {b['hand_variant']}"
        )
    for backend, why in result["skipped"].items():
        lines.append(f"{backend:<12} skipped: {why}")
    best = result["best"]
    if best:
        lines.append(
            f"best suite ({best['suite_backend']}) / best hand ({best['hand_backend']}): {best['ratio']:.3f} "
            f"per repetition, {best.get('pooled_ratio', best['ratio']):.3f} pooled "
            f"(target <= {TARGET_BEST} per repetition: {'met' if best['ok'] else 'MISSED'})"
        )
    cache = result.get("cache")
    if cache:
        per = ", ".join(f"{b} {a:.1f} -> {c:.1f}" for b, (a, c) in cache["by_backend_s"].items())
        lines.append(
            f"cache: {cache['cases']} cases, first run {cache['first']['seconds']:.1f} s, second run "
            f"{cache['second']['seconds']:.1f} s: {cache['speedup']:.1f}x faster "
            f"(target >= {cache['target']:.0f}x: {'met' if cache['ok'] else 'MISSED'})\n"
            f"  seconds by backend, first -> second run: {per}"
        )
    return "\n".join(lines)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench-backends`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench-backends",
        help="time the suite's latency path against hand-tuned loops per CPU backend, and the cache's second-run speedup",
    )
    p.add_argument("--arch", default="resnet50", help="architecture to time")
    p.add_argument("--input-size", type=int, default=224, help="image height and width")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="arithmetic of the artifacts")
    p.add_argument("--rounds", type=int, default=LATENCY_DEFAULTS["rounds"],
                   help=f"timed calls per block (default {LATENCY_DEFAULTS['rounds']}, the suite's latency.rounds)")
    p.add_argument("--warmup", type=int, default=LATENCY_DEFAULTS["warmup"],
                   help=f"untimed calls before each block (default {LATENCY_DEFAULTS['warmup']}, the suite's latency.warmup)")
    p.add_argument("--reps", type=int, default=5, help="(suite, hand) block pairs per backend (default 5)")
    p.add_argument("--backends", nargs="+", default=list(CPU_BACKENDS), metavar="BACKEND",
                   help="backends to time (default: every CPU backend)")
    p.add_argument("--threads", type=int, default=None, help="default: physical cores")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="artifact cache for the suite side (default: $RESNETBENCH_CACHE or .resnetbench-cache)",
    )
    p.add_argument("--skip-cache-check", action="store_true",
                   help="do not measure the artifact cache's second-run speedup")
    p.add_argument("--json", default=None, metavar="PATH", help="also write everything measured here")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``bench-backends``; 0 when every target holds, 1 otherwise."""
    unknown = [b for b in args.backends if b not in CPU_BACKENDS]
    if unknown:
        print(
            f"resnetbench bench-backends: error: unknown CPU backend(s) {', '.join(unknown)}; "
            f"known: {', '.join(CPU_BACKENDS)}",
            file=sys.stderr,
        )
        return 2

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    result = bench_backends(
        args.arch,
        args.input_size,
        tuple(args.backends),
        args.rounds,
        args.warmup,
        args.reps,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        threads=args.threads,
        progress=progress,
        dtype=args.dtype,
    )
    if not args.skip_cache_check:
        result["cache"] = cache_check(threads=args.threads, progress=progress)
    print(format_report(result))
    if args.json:
        path = Path(args.json)
        write_atomic(path, result, default=str)
        print(f"wrote {path}")
    ok = bool(result["best"] and result["best"]["ok"]) and all(b["ratio_ok"] for b in result["backends"].values())
    wrong = [f"{name}: {b['suite_timed_outputs']['reason']}" for name, b in result["backends"].items()
             if b["suite_timed_outputs"]["verdict"] != "passed"]
    if wrong:  # a suite side that did not compute its outputs timed something else
        print("timed outputs not checked or wrong: " + "; ".join(wrong))
        ok = False
    if "cache" in result:
        ok = ok and result["cache"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="resnetbench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["bench-backends", *sys.argv[1:]])
    sys.exit(ns.func(ns))
