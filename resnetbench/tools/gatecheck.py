"""``resnetbench gate-check``: the regression gate's own error rates, measured on this machine.

The gate (``stats.decide_blocks`` on ``stats.normalized_blocks``) was designed on
simulated samples; this command checks it on real ones. It builds a few small cases and
their latency references (``measure.latency_reference``), then collects *runs* the way
``test_latency`` does: a plain loop of ``rounds`` samples through pytest-benchmark's own
``BenchmarkFixture.pedantic``, then ``pairs`` [reference call, case call] pairs in
``blocks`` blocks (``measure.latency_reference.time_pairs``).

Algorithm
---------
1. Build each case and its reference (through the artifact cache).
2. Repeat ``rounds_of_pairs`` rounds. In a round, every case gets four runs in a seeded
   random order: two of the unmodified runner (A, B) and two of a ``SlowedRunner`` whose
   ``run`` does the real work and then busy-waits (a ``perf_counter`` loop, not a sleep,
   so the added time is wall time the scheduler cannot shorten) for ``f`` times the
   duration of the work it just did, with ``f`` = 0.10 and 0.20. That is what a model
   needing ``f`` more compute does: its extra time scales with the machine's speed at
   that moment. (A fixed delay set from an earlier median would be a different fraction
   of every call on a machine whose speed moves 10-20% between runs, and the "true"
   ratio would be unknown.)
3. Each round gives three comparisons per case: A/A (the earlier unmodified run as
   baseline), slow10 (A vs the 10% run) and slow20 (B vs the 20% run). Each goes through
   ``decide_blocks`` exactly as ``resnetbench compare`` does, at the gate's default
   threshold and at the other thresholds asked for; ``summarize_gate_check`` (below)
   turns the decisions into rates and checks them against ``GATE_TARGETS``.

What it cannot see: every run here comes from one process and one loaded runner, so
differences between processes (thread placement, memory layout, a different build of
the same artifact) that a real baseline-vs-current comparison has are not sampled.
A/A false positives measured here are a lower bound for that reason.

Example::

    resnetbench gate-check --json reports/gate-check.json
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from resnetbench.measure.latency import own_loop
from resnetbench.records import BLOCKING
from resnetbench.results import write_atomic
from resnetbench.stats import BLOCK_ALPHA, DEFAULT_THRESHOLD, decide_blocks, normalized_blocks
from resnetbench.tools.slowdown import SlowedRunner, parse_family, wait_for

DEFAULT_FRACTIONS = (0.10, 0.20)
EXIT_OK, EXIT_MISSED = 0, 1
LATENCY_CASE_TARGET_S = 5.0
# Targets a gate must meet on A/A pairs and injected slowdowns.
GATE_TARGETS: dict[str, Any] = {
    "false_positive_rate_max": 0.01,
    "min_aa_pairs": 100,
    "detection_rate_min": {"slow10": 0.80, "slow20": 0.95},
    # "the estimated ratio within +-3 points": read as the mean absolute error of the
    # estimates; the share of single estimates within it is reported beside it.
    "ratio_error_max": 0.03,
}


# --------------------------------------------------------------------------- timing


class _QuietLogger:
    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass

    warning = info = error = debug


def pedantic_samples(
    fn: Callable[[Any], Any], arg: Any, warmup: int, rounds: int, setup: Callable[[], Any] | None = None
) -> list[float]:
    """Milliseconds per call from pytest-benchmark's own ``BenchmarkFixture.pedantic``.

    This is the suite's measurement path (``test_latency`` calls ``benchmark.pedantic``
    with ``iterations=1``), with the fixture built outside pytest using the plugin's
    default options (gc left enabled, ``time.perf_counter`` timer). Falls back to
    ``own_loop`` only when this pytest-benchmark's fixture cannot be built that way.
    """
    try:
        from pytest_benchmark.fixture import BenchmarkFixture
        from pytest_benchmark.utils import NameWrapper

        fixture = BenchmarkFixture(
            SimpleNamespace(name="resnetbench", nodeid="resnetbench"),
            disable_gc=False,
            timer=NameWrapper(time.perf_counter),
            min_rounds=5,
            min_time=0.000005,
            max_time=1.0,
            precision=None,
            confidence=None,
            warmup=False,
            warmup_iterations=100000,
            calibration_precision=10,
            add_stats=lambda stats: None,
            logger=_QuietLogger(),
            warner=lambda *a, **k: None,
            disabled=False,
            cprofile=False,
            cprofile_loops=None,
            cprofile_dump=False,
        )
    except TypeError:
        return own_loop(fn, arg, warmup, rounds, setup=setup)
    if setup is not None:
        fixture.pedantic(fn, setup=setup, warmup_rounds=warmup, rounds=rounds, iterations=1)
    else:
        fixture.pedantic(fn, args=(arg,), warmup_rounds=warmup, rounds=rounds, iterations=1)
    return [s * 1e3 for s in fixture.stats.stats.data]


@dataclass
class GateRun:
    """One run as ``test_latency`` makes it: the plain loop's samples and the reference pairs."""

    case: str
    kind: str
    fraction: float
    samples_ms: list[float]
    paired: dict[str, Any] = field(default_factory=dict)
    stability: str = "stable"  # as test_latency decides it, after its re-timings

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


def collect_run(
    runner: Any, native: Any, reference: Any, warmup: int, rounds: int, pairs: int, blocks: int, case: str,
    kind: str, fraction: float = 0.0,
) -> GateRun:
    """The plain pytest-benchmark loop, then the reference pairs, exactly as ``test_latency`` times them,
    re-timed while unstable as ``test_latency`` does (``LATENCY_DEFAULTS['retimes']`` times)."""
    from resnetbench.config import LATENCY_DEFAULTS
    from resnetbench.measure.latency_reference import time_pairs
    from resnetbench.measure.stability import assess

    for attempt in range(1 + LATENCY_DEFAULTS["retimes"]):
        samples = pedantic_samples(runner.run, native, warmup, rounds)
        paired = {**time_pairs(reference, runner.run, native, pairs), "blocks": blocks}
        verdict = assess(samples, paired["reference_ms"])["verdict"]
        if verdict == "stable":
            return GateRun(case, kind, fraction, samples, paired, "retimed" if attempt else "stable")
    return GateRun(case, kind, fraction, samples, paired, "unstable")


# --------------------------------------------------------------------------- schedule and decisions


def kind_name(fraction: float) -> str:
    """slow10 for 0.10 (the names ``summarize_gate_check`` parses)."""
    return f"slow{round(fraction * 100)}"


def round_order(rng: random.Random, fractions: Sequence[float]) -> list[str]:
    """The runs of one round in random order: "a", "b" and one slowNN per fraction."""
    order = ["a", "b"] + [kind_name(f) for f in fractions]
    rng.shuffle(order)
    return order


def pairs_of_round(
    case: str, runs: dict[str, GateRun], fractions: Sequence[float], order: list[str]
) -> list[tuple[str, GateRun, GateRun]]:
    """(kind, baseline, current) comparisons of one round: A/A, then each slow run against an unmodified one.

    The A/A baseline is whichever unmodified run came first; slow kinds take the
    unmodified runs in turn (slow10 vs A, slow20 vs B, ...).
    """
    first, second = sorted(("a", "b"), key=order.index)
    out = [("aa", runs[first], runs[second])]
    for i, f in enumerate(fractions):
        out.append((kind_name(f), runs["ab"[i % 2]], runs[kind_name(f)]))
    return out


def decide(
    kind: str, case: str, base: GateRun, cur: GateRun, threshold: float, alpha: float, seed: int
) -> dict[str, Any]:
    """One comparison through the gate, as ``resnetbench compare`` makes it (an unstable run decides nothing)."""
    if "unstable" in (base.stability, cur.stability):
        rec = {"decision": "unstable", "ratio": None, "ci": None, "p_value": None,
               "reason": "a run stayed unstable after re-timing"}
    else:
        base_blocks, cur_blocks = normalized_blocks({"paired": base.paired}), normalized_blocks({"paired": cur.paired})
        if base_blocks is None or cur_blocks is None:  # collect_run always records valid pairs
            raise ValueError(f"{case}: a {kind} run has no valid reference pairs")
        rec = decide_blocks(
            base_blocks,
            cur_blocks,
            threshold=threshold,
            alpha=alpha,
            rng_seed=seed,
        )
    return {
        "kind": kind,
        "case": case,
        "decision": rec["decision"],
        "ratio": rec["ratio"],
        "ci": rec["ci"],
        "p_value": rec["p_value"],
        "reason": rec["reason"],
        "threshold": threshold,
        "fraction": cur.fraction,
        "median_ms": [base.median_ms, cur.median_ms],
    }


# --------------------------------------------------------------------------- summaries


def _injected(kind: str) -> float:
    """Injected ratio of a gate-check kind: aa -> 1.0, slow10 -> 1.10, slow20 -> 1.20."""
    if kind == "aa":
        return 1.0
    match = re.fullmatch(r"slow(\d+)", kind)
    if not match:
        raise ValueError(f"unknown gate-check kind {kind!r}: expected 'aa' or 'slowNN'")
    return 1 + int(match.group(1)) / 100


def summarize_gate_check(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Error rates of the gate on A/A pairs and injected slowdowns, and whether they meet targets.

    Each pair has ``kind`` ("aa", "slow10", "slow20"; any "slowNN" works), ``decision``
    and ``ratio``. Returns per kind: ``n``, ``regressed``, ``rate`` (of regressed),
    ``decisions`` (counts), ``injected``, ``mean_abs_ratio_error``, ``max_abs_ratio_error``
    and ``within_ratio_error`` (fraction within ``GATE_TARGETS['ratio_error_max']``);
    plus top-level ``false_positive_rate``, ``detection_rate`` (per slow kind),
    ``meets_targets`` and ``failures`` (what missed a target).

    Example::

        >>> s = summarize_gate_check([{"kind": "aa", "decision": "unchanged", "ratio": 1.0}])
        >>> s["false_positive_rate"]
        0.0
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for pair in pairs:
        by_kind.setdefault(pair["kind"], []).append(pair)
    kinds: dict[str, dict[str, Any]] = {}
    limit = GATE_TARGETS["ratio_error_max"]
    for kind, items in sorted(by_kind.items()):
        injected = _injected(kind)
        errors = [abs(p["ratio"] - injected) for p in items if p.get("ratio") is not None]
        regressed = sum(p["decision"] == "regressed" for p in items)
        red = sum(p["decision"] in BLOCKING for p in items)
        kinds[kind] = {
            "n": len(items),
            "injected": injected,
            "regressed": regressed,
            "rate": regressed / len(items),
            # the fail-closed gate also fails on inconclusive and unstable: what A/A must keep rare
            "blocking": red,
            "blocking_rate": red / len(items),
            "decisions": dict(Counter(p["decision"] for p in items)),
            "n_ratio": len(errors),
            "mean_abs_ratio_error": float(np.mean(errors)) if errors else None,
            "max_abs_ratio_error": float(np.max(errors)) if errors else None,
            "within_ratio_error": (sum(e <= limit for e in errors) / len(errors))
            if errors
            else None,
        }
    failures: list[str] = []
    aa = kinds.get("aa")
    fp_rate = aa["blocking_rate"] if aa else None
    if aa is None:
        failures.append("no A/A pairs")
    else:
        if aa["n"] < GATE_TARGETS["min_aa_pairs"]:
            failures.append(f"only {aa['n']} A/A pairs (need {GATE_TARGETS['min_aa_pairs']})")
        if aa["blocking_rate"] >= GATE_TARGETS["false_positive_rate_max"]:
            # Strictly below: 100 comparisons only show a rate under 1% with 0 false alarms.
            failures.append(
                f"A/A false alarms (regressed, inconclusive or unstable) {aa['blocking']}/{aa['n']}"
                f" = {aa['blocking_rate']:.1%} (must stay below {GATE_TARGETS['false_positive_rate_max']:.0%})"
            )
    detection = {k: v["rate"] for k, v in kinds.items() if k != "aa"}
    for kind, minimum in GATE_TARGETS["detection_rate_min"].items():
        if kind not in kinds:
            failures.append(f"no {kind} pairs")
            continue
        info = kinds[kind]
        if info["rate"] < minimum:
            failures.append(
                f"{kind} detected {info['regressed']}/{info['n']} = {info['rate']:.0%}"
                f" < {minimum:.0%}"
            )
        if info["mean_abs_ratio_error"] is None or info["mean_abs_ratio_error"] > limit:
            failures.append(f"{kind} ratio error {info['mean_abs_ratio_error']} > {limit}")
    return {
        "kinds": kinds,
        "false_positive_rate": fp_rate,
        "detection_rate": detection,
        "mean_abs_ratio_error": {k: v["mean_abs_ratio_error"] for k, v in kinds.items()},
        "meets_targets": not failures,
        "failures": failures,
    }


# --------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the verdict table."""

    kind: str
    n: int
    regressed: int
    rate: float
    mean_abs_ratio_error: float | None
    within_ratio_error: float | None
    decisions: dict[str, int]
    target: str
    ok: bool
    notes: list[str] = field(default_factory=list)


def target_rows(summary: dict[str, Any], targets: dict[str, Any] = GATE_TARGETS) -> list[Row]:
    """Per kind: counts, rates, ratio error, the target that applies and whether it holds."""
    rows = []
    limit = targets["ratio_error_max"]
    for kind, info in summary["kinds"].items():
        notes: list[str] = []
        err = info["mean_abs_ratio_error"]
        if kind == "aa":
            fp_max, n_min = targets["false_positive_rate_max"], targets["min_aa_pairs"]
            # fail-closed: an A/A comparison the gate cannot decide is as red as a regression
            target = f"red (fail-closed) < {fp_max:.0%}, n >= {n_min}"
            ok = info.get("blocking_rate", info["rate"]) < fp_max and info["n"] >= n_min
            if info["n"] < n_min:
                notes.append(f"only {info['n']} comparisons")
            if info.get("blocking", 0) > info["regressed"]:
                notes.append(f"{info['blocking']} red counting inconclusive/unstable")
        else:
            minimum = targets["detection_rate_min"].get(kind)
            parts = [f"detect >= {minimum:.0%}"] if minimum is not None else []
            parts.append(f"mean|err| <= {limit}")
            target = ", ".join(parts)
            detect_ok = minimum is None or info["rate"] >= minimum
            err_ok = err is not None and err <= limit
            ok = detect_ok and err_ok
            if not err_ok:
                notes.append("ratio error too large")
        rows.append(
            Row(
                kind,
                info["n"],
                info["regressed"],
                info["rate"],
                err,
                info["within_ratio_error"],
                info["decisions"],
                target,
                ok,
                notes,
            )
        )
    present = {r.kind for r in rows}
    if "aa" not in present:
        rows.append(Row("aa", 0, 0, 0.0, None, None, {}, "A/A pairs needed", False, ["none"]))
    for kind in targets["detection_rate_min"]:
        if kind not in present:
            rows.append(Row(kind, 0, 0, 0.0, None, None, {}, "pairs needed", False, ["none"]))
    return rows


def format_table(rows: list[Row]) -> str:
    """The verdict table as fixed-width text."""
    head = f"{'kind':<7} {'comparisons':>11} {'regressed':>9} {'rate':>7} {'mean|err|':>9} {'<=0.03':>7}  {'target':<32} {'ok':<4} decisions"
    lines = [head, "-" * len(head)]
    for r in rows:
        err = "-" if r.mean_abs_ratio_error is None else f"{r.mean_abs_ratio_error:.4f}"
        within = "-" if r.within_ratio_error is None else f"{r.within_ratio_error:.0%}"
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(r.decisions.items()))
        note = f" ({'; '.join(r.notes)})" if r.notes else ""
        lines.append(
            f"{r.kind:<7} {r.n:>11} {r.regressed:>9} {r.rate:>7.1%} {err:>9} {within:>7}  {r.target:<32} "
            f"{'yes' if r.ok else 'NO':<4} {decisions}{note}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


FAMILIES = ("fp32", "bf16", "int8-static")


def _build(arch: str, backend: str, input_size: int, cache_dir: Path, threads: int, family: str = "fp32") -> Any:
    from resnetbench.build import build_default
    from resnetbench.cache import ArtifactCache

    dtype, compression = parse_family(family)
    return build_default(arch, backend, 1, input_size, ArtifactCache(cache_dir), threads, "<gate-check>", dtype,
                         compression)


def latency_case_wall(
    arch: str, backend: str, input_size: int, cache_dir: Path, threads: int, latency: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Wall time of one latency case with the matrix defaults, split as the suite spends it.

    ``build_s``: ``build_case`` for the case and its reference (the fixture the tests
    share, and the reference built once per backend/batch/size; from the cache when it is
    warm); ``timing_s``: warm-up + rounds through ``pedantic`` and the reference pairs;
    ``test_s``: the whole ``test_latency`` body (input, timing, summary, FLOP count, roofline).
    """
    import torch

    from resnetbench.cache import ArtifactCache
    from resnetbench.config import LATENCY_DEFAULTS
    from resnetbench.measure.latency import count_flops, roofline, summarize
    from resnetbench.measure.latency_reference import reference_for

    lat = {**LATENCY_DEFAULTS, **(latency or {})}
    start = time.perf_counter()
    built = _build(arch, backend, input_size, cache_dir, threads)
    reference = reference_for(backend, 1, input_size, threads, ArtifactCache(cache_dir))
    build_s = time.perf_counter() - start
    test_start = time.perf_counter()
    x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    native = built.runner.prepare(x)
    start = time.perf_counter()
    run = collect_run(built.runner, native, reference, lat["warmup"], lat["rounds"], lat["pairs"], lat["blocks"],
                      "latency-case", "ref")
    timing_s = time.perf_counter() - start
    rec = summarize(run.samples_ms, 1)
    flops = count_flops(built.fp32_model, torch.randn(1, 3, input_size, input_size))
    rec.update(roofline(flops["flops"], rec["median_ms"], None))
    test_s = time.perf_counter() - test_start
    return {
        "case": built.case.id,
        "input_size": input_size,
        **lat,
        "cached_build": bool(built.conversion.get("cached")),
        "build_s": build_s,
        "timing_s": timing_s,
        "test_s": test_s,
        "median_ms": rec["median_ms"],
        "target_s": LATENCY_CASE_TARGET_S,
        "meets_target": test_s < LATENCY_CASE_TARGET_S,
    }


def run_gate_check(
    arch: str = "resnet18",
    backends: Sequence[str] = ("eager", "onnxruntime"),
    input_size: int = 64,
    rounds_of_pairs: int = 50,
    rounds: int = 60,
    warmup: int = 5,
    pairs: int = 48,
    blocks: int = 8,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    threshold: float = DEFAULT_THRESHOLD,
    also_thresholds: Sequence[float] = (),
    alpha: float = BLOCK_ALPHA,
    cache_dir: Path = Path(".resnetbench-cache"),
    threads: int | None = None,
    seed: int = 0,
    max_minutes: float | None = None,
    progress: Callable[[str], None] = lambda msg: None,
    families: Sequence[str] = ("fp32",),
) -> dict[str, Any]:
    """Build the cases, collect interleaved A/A and slowed runs, and decide every pair.

    Stops adding rounds once ``max_minutes`` have passed (a machine too busy to finish;
    the shortfall then shows as too few A/A comparisons). Returns ``settings``, ``cases``
    (per-kind results), ``pairs`` (one record per comparison at ``threshold``), ``runs``
    (raw samples and pairs), ``summary`` (``summarize_gate_check``), ``other_thresholds``
    (the same for each of ``also_thresholds``), ``machine`` (load averages) and ``wall_s``.
    """
    import torch

    from resnetbench.cache import ArtifactCache
    from resnetbench.environment import default_threads, set_threads
    from resnetbench.measure.latency_reference import reference_for

    threads = threads or default_threads()
    set_threads(threads)
    started = time.perf_counter()
    load_start = os.getloadavg()
    cases: dict[str, dict[str, Any]] = {}
    for backend, family in [(b, f) for b in backends for f in families]:
        built = _build(arch, backend, input_size, cache_dir, threads, family)
        reference = reference_for(backend, 1, input_size, threads, ArtifactCache(cache_dir), *parse_family(family))
        x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
        cases[built.case.id] = {"runner": built.runner, "native": built.runner.prepare(x), "reference": reference,
                                "wait": wait_for(backend), "family": family}
        progress(f"built {built.case.id} and its reference (cached: {built.conversion.get('cached')})")

    fraction_of = {kind_name(f): f for f in fractions}
    thresholds = [threshold, *[t for t in also_thresholds if t != threshold]]
    rng = random.Random(seed)
    decisions: dict[float, list[dict[str, Any]]] = {t: [] for t in thresholds}
    runs: list[GateRun] = []
    rounds_done = 0
    for r in range(rounds_of_pairs):
        if max_minutes is not None and time.perf_counter() - started > max_minutes * 60:
            progress(f"stopping after {r} rounds: the {max_minutes:g}-minute budget is spent")
            break
        rounds_done = r + 1
        for cid, c in cases.items():
            order = round_order(rng, fractions)
            got: dict[str, GateRun] = {}
            for kind in order:
                fraction = fraction_of.get(kind, 0.0)
                runner = SlowedRunner(c["runner"], fraction, c["wait"]) if fraction else c["runner"]
                got[kind] = collect_run(runner, c["native"], c["reference"], warmup, rounds, pairs, blocks, cid,
                                        kind, fraction)
            runs.extend(got.values())
            for kind, base, cur in pairs_of_round(cid, got, fractions, order):
                seed_i = len(decisions[threshold])
                for t in thresholds:
                    decisions[t].append(decide(kind, cid, base, cur, t, alpha, seed=seed_i))
        gc.collect()
        if (r + 1) % 10 == 0 or r + 1 == rounds_of_pairs:
            summary_so_far = summarize_gate_check(decisions[threshold])
            rates = ", ".join(f"{k} {v['regressed']}/{v['n']}" for k, v in summary_so_far["kinds"].items())
            progress(f"round {r + 1}/{rounds_of_pairs}: regressed {rates} ({time.perf_counter() - started:.0f} s)")

    main = decisions[threshold]
    per_case = {cid: summarize_gate_check([d for d in main if d["case"] == cid])["kinds"] for cid in cases}
    family_of = {cid: cases[cid]["family"] for cid in cases}
    per_family = {f: summarize_gate_check([d for d in main if family_of[d["case"]] == f]) for f in families}
    return {
        "settings": {
            "arch": arch,
            "backends": list(backends),
            "families": list(families),
            "input_size": input_size,
            "rounds_of_pairs": rounds_of_pairs,
            "rounds_done": rounds_done,
            "max_minutes": max_minutes,
            "rounds": rounds,
            "warmup": warmup,
            "pairs": pairs,
            "blocks": blocks,
            "fractions": list(fractions),
            "threshold": threshold,
            "alpha": alpha,
            "threads": threads,
            "seed": seed,
            "timing": "pytest_benchmark BenchmarkFixture.pedantic(iterations=1), then measure.latency_reference.time_pairs",
            "reference": {cid: c["reference"].description for cid, c in cases.items()},
        },
        "cases": {cid: {"per_kind": per_case[cid]} for cid in cases},
        # each arithmetic family (pooled over backends) must meet the targets on its own
        "families": {f: {"per_kind": s["kinds"], "meets_targets": s["meets_targets"], "failures": s["failures"]}
                     for f, s in per_family.items()},
        "pairs": main,
        "runs": [asdict(run) for run in runs],
        "summary": summarize_gate_check(main),
        "other_thresholds": {str(t): {"summary": summarize_gate_check(decisions[t]), "pairs": decisions[t]}
                             for t in thresholds[1:]},
        "machine": {"loadavg_start": load_start, "loadavg_end": os.getloadavg(), "runs": len(runs)},
        "wall_s": time.perf_counter() - started,
    }


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``gate-check`` on the CLI's subparsers."""
    from resnetbench.config import LATENCY_DEFAULTS

    p = subparsers.add_parser(
        "gate-check",
        help="measure the latency gate's false-positive and detection rates on this machine (exit 0: targets met)",
        description="Time A/A pairs and injected 10%%/20%% slowdowns of small cases and run each pair "
        "through the regression gate; exit 0 when the gate meets its targets, 1 when it does not.",
    )
    p.add_argument("--arch", default="resnet34",
                   help="default resnet34: a different network from the latency reference (ResNet-18)")
    p.add_argument("--backends", nargs="+", default=["eager", "onnxruntime"], metavar="BACKEND",
                   help="backends to time")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), metavar="FAMILY",
                   help="arithmetic families crossed with --backends, each with its own reference "
                        f"(default {' '.join(FAMILIES)}); the targets must hold for each case")
    p.add_argument("--input-size", type=int, default=64, help="image height and width")
    p.add_argument("--comparisons", type=int, default=50,
                   help="rounds per case; each gives one A/A comparison and one per slowdown (default 50)")
    p.add_argument("--rounds", type=int, default=LATENCY_DEFAULTS["rounds"],
                   help=f"plain-loop samples per run (default {LATENCY_DEFAULTS['rounds']}, as the matrix)")
    p.add_argument("--pairs", type=int, default=LATENCY_DEFAULTS["pairs"],
                   help=f"reference/case pairs per run (default {LATENCY_DEFAULTS['pairs']}, as the matrix)")
    p.add_argument("--blocks", type=int, default=LATENCY_DEFAULTS["blocks"],
                   help=f"blocks the pairs are cut into (default {LATENCY_DEFAULTS['blocks']}, as the matrix)")
    p.add_argument("--warmup", type=int, default=LATENCY_DEFAULTS["warmup"],
                   help=f"untimed calls before each phase (default {LATENCY_DEFAULTS['warmup']})")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help=f"the gate's threshold (default {DEFAULT_THRESHOLD}, as `resnetbench compare`)")
    p.add_argument("--also-threshold", type=float, nargs="*", default=[0.05], metavar="T",
                   help="also report the rates at these thresholds, from the same runs (default 0.05)")
    p.add_argument("--alpha", type=float, default=BLOCK_ALPHA, help=f"the rank test's level (default {BLOCK_ALPHA}, as the gate)")
    p.add_argument("--threads", type=int, default=None, help="default: physical cores")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, inputs and resampling")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="stop adding rounds after this long (default 30; a quiet 2-core machine needs about 10)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="artifact cache (default: $RESNETBENCH_CACHE or .resnetbench-cache)"
    )
    p.add_argument(
        "--latency-input-size",
        type=int,
        default=224,
        help="input size of the ResNet-18 latency case timed at the end (default 224; 0 skips it)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="also write everything measured here")
    real = p.add_argument_group("across processes (the real flow)")
    real.add_argument("--real-flow", default=None, metavar="MATRIX",
                      help="instead of pairs in this process, run MATRIX as separate `pytest --matrix` processes "
                           "with its settings (tuning, latency.processes) and gate every pair of runs "
                           "(resnetbench/tools/realflow.py); raw results go beside --json")
    real.add_argument("--runs", type=int, default=9, help="unchanged runs of --real-flow (default 9: 36 A/A pairs)")
    real.add_argument("--slow", action="append", default=[], metavar="FRACTION:RUNS",
                      help="--real-flow runs with every case slowed by FRACTION, e.g. 0.15:3 (repeatable)")
    cap = p.add_argument_group("the capacity gate (LoadGen Offline and Server; resnetbench/tools/capacitycheck.py)")
    cap.add_argument("--capacity", action="store_true",
                     help="instead of latency pairs, measure the capacity gate: A/A and slowed LoadGen runs of "
                          "--arch on the first of --backends and --families (needs resnetbench[scenarios])")
    cap.add_argument("--trials", type=int, default=100, help="A/A and slowed comparisons each (default 100)")
    cap.add_argument("--streams", type=int, default=2, help="streams of the system under test (default 2)")
    cap.add_argument("--stream-threads", type=int, default=1, help="threads per stream (default 1)")
    cap.add_argument("--repeats", type=int, default=5, help="Offline runs per side (default 5, as scenarios.repeats)")
    cap.add_argument("--seconds", type=float, default=0.5, help="minimum duration of each LoadGen run (default 0.5)")
    cap.add_argument("--p99-ms", type=float, default=15.0, help="the Server p99 bound, ms (default 15)")
    cap.add_argument("--no-server", action="store_true", help="Offline only: no Server capacity searches")
    cap.add_argument("--refine-runs", type=int, default=None,
                     help="Server runs around the crossing after each search (default: as scenarios.server)")
    cap.add_argument("--no-offline", action="store_true",
                     help="Server only: one Offline run per side starts the search; Offline is not compared")
    cap.add_argument("--slowdown", type=float, default=0.20, help="the injected slowdown (default 0.20)")
    p.set_defaults(func=main)
    return p


def capacity_main(args: argparse.Namespace) -> int:
    """``gate-check --capacity``: 0 when the capacity gate meets its targets, 1 otherwise."""
    from resnetbench.cache import default_cache_dir
    from resnetbench.measure.loadgen import LoadGenError
    from resnetbench.tools import capacitycheck

    if args.no_server and args.no_offline:
        print("resnetbench gate-check: error: --no-server and --no-offline leave nothing to check", file=sys.stderr)
        return 2
    if (args.refine_runs or 0) < 0 or min(args.trials, args.streams, args.stream_threads, args.repeats) < 1 \
            or args.seconds <= 0 \
            or args.p99_ms <= 0 or not 0 < args.slowdown < 10:
        print("resnetbench gate-check: error: --trials, --streams, --stream-threads and --repeats must be >= 1, "
              "--refine-runs >= 0, "
              "--seconds and --p99-ms above 0, --slowdown in (0, 10)", file=sys.stderr)
        return 2
    try:
        result = capacitycheck.run_capacity_check(
            args.arch, args.backends[0], args.families[0], args.input_size, args.trials,
            cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(), streams=args.streams,
            threads=args.stream_threads, slowdown=args.slowdown, repeats=args.repeats, seconds=args.seconds,
            p99_ms=None if args.no_server else args.p99_ms, seed=args.seed, offline=not args.no_offline,
            **({} if args.refine_runs is None else {"refine_runs": args.refine_runs}), progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    except LoadGenError as exc:
        print(f"resnetbench gate-check: error: {exc}", file=sys.stderr)
        return 2
    print(capacitycheck.format_summary(result))
    if args.json:
        write_atomic(Path(args.json), result, default=str)
        print(f"wrote {args.json}")
    return EXIT_OK if not result["summary"]["failures"] else EXIT_MISSED


def _print_case_lines(result: dict[str, Any]) -> None:
    for cid, info in result["cases"].items():
        kinds = "; ".join(
            f"{k} {v['regressed']}/{v['n']} err {v['mean_abs_ratio_error']:.4f}" for k, v in info["per_kind"].items()
        )
        print(f"  {cid}: {kinds}")
    for family, info in result["families"].items():
        kinds = "; ".join(f"{k} {v['regressed']}/{v['n']} (blocking {v['blocking']})"
                          for k, v in info["per_kind"].items())
        print(f"  family {family}: {kinds}; {'targets met' if info['meets_targets'] else 'MISSED'}")


def main(args: argparse.Namespace) -> int:
    """Run ``gate-check`` from parsed arguments; 0 when every target holds, 1 otherwise."""
    from resnetbench.cache import default_cache_dir

    if args.capacity:
        return capacity_main(args)
    if args.real_flow:
        from resnetbench.tools import realflow

        if not Path(args.real_flow).is_file() or args.runs < 2:
            print(f"resnetbench gate-check: error: --real-flow {args.real_flow}: needs a matrix file and --runs >= 2",
                  file=sys.stderr)
            return 2
        try:
            slow = [(float(f), int(n)) for f, n in (spec.split(":") for spec in args.slow)]
        except ValueError:
            slow = []
        if len(slow) != len(args.slow) or any(not 0 < f < 10 or n < 1 for f, n in slow):
            print(f"resnetbench gate-check: error: --slow {args.slow}: each must be FRACTION:RUNS, e.g. 0.15:3",
                  file=sys.stderr)
            return 2
        return realflow.main(args)

    if min(args.comparisons, args.rounds, args.pairs, args.blocks) < 1 or args.blocks > args.pairs:
        print("resnetbench gate-check: error: --comparisons, --rounds, --pairs and --blocks must be >= 1, "
              "and --blocks at most --pairs", file=sys.stderr)
        return 2
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    result = run_gate_check(
        args.arch,
        tuple(args.backends),
        args.input_size,
        args.comparisons,
        args.rounds,
        args.warmup,
        args.pairs,
        args.blocks,
        threshold=args.threshold,
        also_thresholds=tuple(args.also_threshold),
        alpha=args.alpha,
        cache_dir=cache_dir,
        threads=args.threads,
        seed=args.seed,
        max_minutes=args.max_minutes or None,
        progress=progress,
        families=tuple(args.families),
    )
    summary = result["summary"]
    s = result["settings"]
    print(
        f"gate-check: {', '.join(result['cases'])}; {s['rounds_done']} rounds per case, {s['rounds']} samples + "
        f"{s['pairs']} reference pairs in {s['blocks']} blocks per run, alpha {s['alpha']}, {s['threads']} threads, "
        f"{result['wall_s']:.0f} s"
    )
    for cid, reference in s["reference"].items():
        print(f"reference of {cid}: {reference}")
    print(f"threshold {s['threshold']:.0%} (the gate's default):")
    print(format_table(target_rows(summary)))
    _print_case_lines(result)
    for t, other in result["other_thresholds"].items():
        print(f"threshold {float(t):.0%} (same runs, for comparison):")
        print(format_table(target_rows(other["summary"])))
    m = result["machine"]
    print(f"  machine: load average {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end")
    if s["rounds_done"] < s["rounds_of_pairs"]:
        print(f"  stopped after {s['rounds_done']} of {s['rounds_of_pairs']} rounds (--max-minutes {s['max_minutes']:g})")
    if args.latency_input_size:
        lat = latency_case_wall("resnet18", args.backends[0], args.latency_input_size, cache_dir, s["threads"])
        result["latency_case"] = lat
        print(
            f"latency case {lat['case']} at {lat['input_size']}x{lat['input_size']} "
            f"(warm-up {lat['warmup']}, {lat['rounds']} rounds, {lat['pairs']} reference pairs; median "
            f"{lat['median_ms']:.1f} ms): timing {lat['timing_s']:.2f} s, whole test_latency {lat['test_s']:.2f} s "
            f"(target < {lat['target_s']:.0f} s: {'met' if lat['meets_target'] else 'MISSED'}); "
            f"build {lat['build_s']:.2f} s ({'cached' if lat['cached_build'] else 'cold'})"
        )
    failures = [*summary["failures"], *(f"family {family}: {f}" for family, info in result["families"].items()
                                        for f in info["failures"])]
    verdict = "targets met" if not failures else "targets MISSED: " + "; ".join(failures)
    print(f"gate-check: {verdict} (pooled and for each family)")
    if args.json:
        path = Path(args.json)
        write_atomic(path, result, default=str)
        print(f"wrote {path}")
    return EXIT_OK if not failures else EXIT_MISSED


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="resnetbench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["gate-check", *sys.argv[1:]])
    sys.exit(ns.func(ns))
