"""Latency statistics of the regression gate: pure functions on samples and blocks.

They know nothing of results files (``compare`` reads those and calls them) and never
import torch. The measurement side (``_gate`` in ``measure/latency_case.py``,
the plugin's ``gate_threshold``, ``resnetbench gate-check``) imports from here, so
measuring never imports the gate.

Latency: the paired gate (``decide_blocks`` on ``normalized_blocks``)
-------------------------------------------------------------------
A plain "fail if the median is 5% slower" gate cries wolf on shared CI machines, for two
reasons: the machine itself is faster or slower from one run to the next (here the
median of one unchanged model moves 10-20% between back-to-back runs), and a median of a
few dozen noisy samples moves by several percent on its own.

Every latency case therefore also times ``pairs`` [reference call, case call] pairs,
where the reference is a fixed ResNet-18 on the case's own backend
(``measure/latency_reference.py`` says why that reference and what it tracks). Each pair's
``case / reference`` ratio cancels the machine's speed at that moment; the pairs are cut
into ``blocks`` blocks and each block's median ratio is one unit. Between two runs the
gate compares the block units: ``ratio`` is median(current blocks) / median(baseline
blocks), ``ci`` a seeded bootstrap 95% interval resampling blocks, ``p_value`` a
two-sided Mann-Whitney U on the blocks, and the decision is the rule of step 3 below.
Blocks rather than pairs are the unit because pairs within a run share its state: a
test on pairs is over-confident, blocks let drift within a run widen the interval.
What blocks cannot see is a bias of the whole run (the reference tracking the case a
little differently in one run than in the next: 0.4-2% here); the rule's floor of half
the threshold on the point estimate is what keeps that from false alarms.

``resnetbench gate-check`` measures the resulting error rates on real runs; its figures
are in docs/gate.md. Results files without reference pairs (made by other tools, or edited)
fall back to the sample-level test below, normalised by the run's calibration kernel.

Fallback for files without pairs (``decide_latency``)
-----------------------------------------------------

1. *Machine drift.* Every run times a fixed calibration kernel in the same process
   (``environment.calibration``). Each side's samples are divided by that run's
   calibration median, so a machine that is uniformly 30% slower today cancels out.
2. *Sampling noise.* On the normalised samples the gate computes

   - ``ratio``: median(current) / median(baseline), the number people read;
   - ``ci``: a seeded, vectorised percentile bootstrap 95% interval of that ratio; it
     resamples the calibration samples too, so a noisy calibration widens the interval
     instead of leaking into the verdict;
   - ``p_value``: a two-sided Mann-Whitney U test (rank based, so the occasional 2x
     outlier that real latency has does not dominate it). Two-sided because the gate
     reports both directions; each direction is therefore tested at ``alpha / 2``.

3. *The decision.* With ``t = threshold``:

   - ``inconclusive`` when either side has fewer than ``min_samples`` (10) samples, when
     the calibration kernel's robust coefficient of variation (1.4826 MAD / median) in
     either run exceeds ``calibration_cv_limit`` (10%: that run's machine was too noisy
     for normalisation to mean anything; two quiet runs whose small CVs differ are fine,
     because the bootstrap already folds calibration noise into the interval), or when the
     interval is so wide that it holds both "no change" and a threshold-sized change
     (``lo < 1 < 1 + t < hi``, or the mirror image for speed-ups);
   - ``regressed`` when all of: p < alpha; the interval excludes 1 (``lo > 1``); the point
     estimate is material (``ratio >= 1 + t/2``); and a threshold-sized slowdown is still
     plausible (``hi >= 1 + t``);
   - ``improved``: the mirror image in log space (``ratio <= 1/(1 + t/2)``,
     ``lo <= 1/(1 + t)``, ``hi < 1``, p < alpha);
   - ``unchanged`` otherwise, with the reason saying whether the change was not
     significant or significant but below the threshold.

Why this rule and not "lower CI bound > 1 + t": a true slowdown of exactly ``t`` has its
lower bound above ``1 + t`` only about half the time, so that rule misses half the
regressions it is meant to catch. Here, a slowdown of exactly ``t`` fails whenever it is
significant and its interval reaches ``1 + t`` -- about 97.5% of the time by construction
of a 95% interval (when the interval is honest), at any sample size -- while a slowdown
the data show to be confidently smaller than ``t`` (a precise 1.08x with interval
1.07-1.09) passes, which is what a user who chose ``t`` asked for. Identical distributions must clear three independent hurdles
(rank test, interval excluding 1, point estimate at least ``t/2`` away) to fail: the rank
test alone bounds the A/A false alarm rate by ``alpha/2`` for i.i.d. samples, and the
``t/2`` floor keeps it near zero when samples are not i.i.d. (drift within a run, a
calibration that tracks the machine only approximately), where p-values alone are
over-confident.

Measured with threshold 0.10, alpha 0.01, 1000 seeded pairs per row: lognormal samples
with CV 3-5%, 3% outliers of 1.3-2.5x, each run on a machine of random speed (sd 5%,
cancelled by 20 calibration samples of CV 1.5%); "drift" adds 1% per-run noise that
calibration does not see. Cells: share decided ``regressed``.

    injected slowdown       0%    3%    5%    7%    9%   10%   20%  (20% speed-up)
    n=80, no drift         0.0   0.0   0.7  23    89    99   100   (100% improved)
    n=80, 1% drift         0.0   0.5   6    35    75    89   100   (100% improved)
    n=50, no drift         0.0   0.1   4    39    91    99   100   (100% improved)

The estimated ratio is within 0.03 of the injected one in 99.4-99.9% of trials at n=80
without drift (95.6-98.9% at n=50; ~90% with 1% drift, which no estimator can remove).
For comparison, "p < alpha and ratio >= 1 + t/2" alone flags 13% of true 3% and 49% of
true 5% slowdowns with drift, and 1-2 in 1000 A/A pairs. tests/test_compare.py re-checks
the n=80 rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from resnetbench.domain import DEFAULT_THRESHOLD as DEFAULT_THRESHOLD  # re-exported for compare

MIN_SAMPLES = 10
# The rank test's level. On raw samples (the fallback) 0.01. On 8 + 8 blocks the exact
# Mann-Whitney p-values are coarse (... 0.0070, 0.0104, 0.0148 ...), and 0.01 fell just
# below the step that one stray block causes: gate-check saw 20% slowdowns estimated at
# 1.27x (95% CI 1.13-1.34) passed as "not significant" at p = 0.0104. A/A pairs are kept
# out by the interval and the half-threshold floor, not by this level.
SAMPLE_ALPHA = 0.01
BLOCK_ALPHA = 0.02
CALIBRATION_CV_LIMIT = 0.10
N_BOOT = 2000

Number = float | int


# --------------------------------------------------------------------------- latency core


def robust_cv(samples: Sequence[Number] | np.ndarray) -> float:
    """Coefficient of variation from the median absolute deviation (outlier resistant)."""
    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        return 0.0
    med = float(np.median(x))
    if med <= 0:
        return math.inf
    return float(1.4826 * np.median(np.abs(x - med)) / med)


def _as_samples(values: Sequence[Number] | np.ndarray, what: str) -> np.ndarray:
    """Samples as a float array; raises ValueError on non-finite or non-positive values."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size and (not np.all(np.isfinite(x)) or np.any(x <= 0)):
        raise ValueError(f"{what} must be finite positive milliseconds")
    return x


def _calibration(
    value: Number | Sequence[Number] | np.ndarray, what: str
) -> tuple[float, np.ndarray | None]:
    """(median, samples or None) from a calibration given as a median or as raw samples."""
    if isinstance(value, (int, float)):
        if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{what} must be a finite positive number of milliseconds")
        return float(value), None
    x = _as_samples(value, what)
    if x.size == 0:
        raise ValueError(f"{what} has no samples")
    return float(np.median(x)), x


def _bootstrap_medians(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Medians of n_boot resamples of x, vectorised, in chunks of bounded memory."""
    # With x sorted, a resample's median is x at the median of the drawn indices, and
    # sorting small integers is ~10x faster than np.median on the gathered floats.
    xs = np.sort(x)
    n = xs.size
    lo_k, hi_k = (n - 1) // 2, n // 2
    rows = max(1, min(n_boot, 2_000_000 // n))
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        idx.sort(axis=1)
        out[start:stop] = (xs[idx[:, lo_k]] + xs[idx[:, hi_k]]) / 2
    return out


def fmt_p(p: float | None) -> str:
    """p-value as short text: 0.034, 2e-09."""
    if p is None:
        return "p=n/a"
    if p < 1e-3:
        return f"p={p:.0e}"
    return f"p={p:.3f}".rstrip("0").rstrip(".") if p < 1 else "p=1"


def fmt_ci(ci: Sequence[float] | None) -> str:
    """Interval as 1.15-1.21."""
    return "n/a" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def decide_latency(
    base_samples_ms: Sequence[Number] | np.ndarray,
    cur_samples_ms: Sequence[Number] | np.ndarray,
    base_cal_ms: Number | Sequence[Number] | np.ndarray = 1.0,
    cur_cal_ms: Number | Sequence[Number] | np.ndarray = 1.0,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = SAMPLE_ALPHA,
    rng_seed: int = 0,
    *,
    min_samples: int = MIN_SAMPLES,
    calibration_cv_limit: float = CALIBRATION_CV_LIMIT,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """Decide whether current latency samples regressed against baseline ones.

    ``base_cal_ms``/``cur_cal_ms`` are each run's calibration kernel: a median in ms, or
    its raw samples (then its median normalises, its noise is bootstrapped and its
    robust CV is checked against ``calibration_cv_limit``). The algorithm and the reasons
    for it are in the module docstring.

    Returns ``decision`` (regressed | improved | unchanged | inconclusive), ``ratio``
    (median current / median baseline after normalisation, None when not computable),
    ``ci`` ([low, high] 95% bootstrap interval of the ratio), ``p_value`` (two-sided
    Mann-Whitney U), ``reason``, ``n`` ([baseline, current]) and ``calibration_cv``.

    Example::

        >>> rng = np.random.default_rng(1)
        >>> base = 20 * np.exp(rng.normal(0, 0.04, 50))
        >>> decide_latency(base, 1.2 * base[::-1])["decision"]
        'regressed'
    """
    if not 0 < threshold < 10:
        raise ValueError(f"threshold must be a positive fraction such as 0.1, got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    base = _as_samples(base_samples_ms, "baseline samples")
    cur = _as_samples(cur_samples_ms, "current samples")
    cal_b, cal_b_samples = _calibration(base_cal_ms, "baseline calibration")
    cal_c, cal_c_samples = _calibration(cur_cal_ms, "current calibration")
    cv_b = robust_cv(cal_b_samples) if cal_b_samples is not None else None
    cv_c = robust_cv(cal_c_samples) if cal_c_samples is not None else None
    record: dict[str, Any] = {
        "decision": "inconclusive",
        "ratio": None,
        "ci": None,
        "p_value": None,
        "reason": "",
        "n": [int(base.size), int(cur.size)],
        "calibration_ms": [cal_b, cal_c],
        "calibration_cv": [cv_b, cv_c],
        "threshold": threshold,
        "alpha": alpha,
    }
    n_min = min(base.size, cur.size)
    if n_min < min_samples:
        side = "baseline" if base.size <= cur.size else "current"
        record["reason"] = f"too few samples in {side} (n={n_min} < {min_samples})"
        return record

    base_n = base / cal_b
    cur_n = cur / cal_c
    ratio = float(np.median(cur_n) / np.median(base_n))
    rng = np.random.default_rng(rng_seed)
    boot = _bootstrap_medians(cur, rng, n_boot) / _bootstrap_medians(base, rng, n_boot)
    cal_ratio = (
        _bootstrap_medians(cal_b_samples, rng, n_boot) if cal_b_samples is not None else cal_b
    ) / (_bootstrap_medians(cal_c_samples, rng, n_boot) if cal_c_samples is not None else cal_c)
    boot = boot * cal_ratio
    lo, hi = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    if np.ptp(np.concatenate([base_n, cur_n])) == 0:
        p = 1.0  # all samples equal: scipy would warn and return nan
    else:
        p = _rank_test_p(cur_n, base_n)
    record.update(ratio=ratio, ci=[lo, hi], p_value=p)

    stats = f"(95% CI {fmt_ci([lo, hi])}), {fmt_p(p)}"
    noisy = [
        (name, cv)
        for name, cv in (("baseline", cv_b), ("current", cv_c))
        if cv is not None and cv > calibration_cv_limit
    ]
    if noisy:
        name, cv = max(noisy, key=lambda item: item[1])
        record["reason"] = (
            f"calibration kernel varied {cv:.0%} within the {name} run"
            f" (limit {calibration_cv_limit:.0%}): machine too noisy to compare;"
            f" ratio {ratio:.2f} {stats}"
        )
    else:
        _apply_rule(record, ratio, lo, hi, p, threshold, alpha)
    return record


def _apply_rule(
    record: dict[str, Any], ratio: float, lo: float, hi: float, p: float, threshold: float, alpha: float
) -> None:
    """The decision (module docstring, step 3) from a ratio, its 95% interval and a p-value."""
    stats = f"(95% CI {fmt_ci([lo, hi])}), {fmt_p(p)}"
    up, half_up = 1 + threshold, 1 + threshold / 2
    if (lo < 1 < hi) and (hi > up or lo < 1 / up):
        record["reason"] = (
            f"too noisy to tell: ratio {ratio:.2f} but 95% CI {fmt_ci([lo, hi])} holds both"
            f" no change and a {threshold:.0%} change, {fmt_p(p)}"
        )
    elif p < alpha and lo > 1 and ratio >= half_up and hi >= up:
        record["decision"] = "regressed"
        record["reason"] = f"{ratio:.2f}x slower {stats}"
    elif p < alpha and hi < 1 and ratio <= 1 / half_up and lo <= 1 / up:
        record["decision"] = "improved"
        record["reason"] = f"{1 / ratio:.2f}x faster (ratio {ratio:.2f}, 95% CI {fmt_ci([lo, hi])}), {fmt_p(p)}"
    else:
        record["decision"] = "unchanged"
        if p >= alpha or lo <= 1 <= hi:
            why = "no significant change"
        else:
            why = f"within the {threshold:.0%} threshold"
        record["reason"] = f"{ratio:.2f}x {stats}: {why}"


MIN_BLOCKS = 4


def _rank_test_p(cur: np.ndarray, base: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of current against baseline.

    scipy.stats is imported here, not at the top: it takes ~0.5 s, and every command's
    parser reaches this module through the measuring tools (validate, schema and merge
    do no statistics).
    """
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(cur, base, alternative="two-sided").pvalue)


def normalized_blocks(latency: dict[str, Any] | None) -> np.ndarray | None:
    """Per block of consecutive pairs, the median case/reference time ratio; None if not recorded.

    ``latency["paired"]`` holds ``reference_ms`` and ``case_ms`` (one reference call right
    before each case call, ``measure/latency_reference.py``) and ``blocks``, the number of blocks
    the pairs are cut into. Each pair's ratio cancels the machine's speed at that moment;
    blocks make the unit the gate resamples, so drift within a run shows in the interval.
    """
    paired = (latency or {}).get("paired")
    if not isinstance(paired, dict):
        return None
    ref, case, blocks = paired.get("reference_ms"), paired.get("case_ms"), paired.get("blocks")
    if not isinstance(ref, list) or not isinstance(case, list) or not ref or len(ref) != len(case):
        return None
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= len(ref):
        return None
    try:
        r, c = np.asarray(ref, dtype=float), np.asarray(case, dtype=float)
    except (TypeError, ValueError):
        return None
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c)) and np.all(r > 0) and np.all(c > 0)):
        return None
    log_ratio = np.log(c / r)
    return np.exp([np.median(chunk) for chunk in np.array_split(log_ratio, blocks)])


def decide_blocks(
    base_blocks: Sequence[Number] | np.ndarray,
    cur_blocks: Sequence[Number] | np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = BLOCK_ALPHA,
    rng_seed: int = 0,
    *,
    min_blocks: int = MIN_BLOCKS,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """The gate on blocks of case/reference ratios (``normalized_blocks``): blocks, not pairs, are the unit.

    Timings within one run are not independent of the run's machine state, so a test on
    single samples is over-confident (gate-check measured 15-18% A/A false alarms that way
    on these machines). Each block's value is the median case/reference ratio of its
    pairs; the bootstrap and the rank test resample blocks, so drift within a run widens
    the interval as it should. Returns the same record as ``decide_latency``.
    """
    return _decide_pooled([np.asarray(base_blocks, dtype=float)], [np.asarray(cur_blocks, dtype=float)],
                          threshold, alpha, rng_seed, min_blocks, n_boot)


def _decide_pooled(base_procs: Sequence[np.ndarray], cur_procs: Sequence[np.ndarray], threshold: float,
                   alpha: float, rng_seed: int, min_blocks: int, n_boot: int) -> dict[str, Any]:
    """The block rule on each side's processes: the pooled blocks' median ratio, an interval from
    ``_process_medians`` (blocks for a side with one process, whole processes otherwise) and
    the rank test on the pooled blocks."""
    base = _as_samples(np.concatenate(list(base_procs)), "baseline blocks")
    cur = _as_samples(np.concatenate(list(cur_procs)), "current blocks")
    several = max(len(base_procs), len(cur_procs)) > 1
    record: dict[str, Any] = {
        "decision": "inconclusive", "ratio": None, "ci": None, "p_value": None, "reason": "",
        "n": [int(base.size), int(cur.size)],
        "unit": "blocks of case/reference ratios" + (", resampled by process" if several else ""),
        "threshold": threshold, "alpha": alpha,
    }
    if min(base.size, cur.size) < min_blocks:
        record["reason"] = f"too few blocks (n={min(base.size, cur.size)} < {min_blocks})"
        return record
    ratio = float(np.median(cur) / np.median(base))
    rng = np.random.default_rng(rng_seed)
    boot = (_process_medians([np.asarray(p, dtype=float) for p in cur_procs], rng, n_boot)
            / _process_medians([np.asarray(p, dtype=float) for p in base_procs], rng, n_boot))
    lo, hi = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    p = 1.0 if np.ptp(np.concatenate([base, cur])) == 0 else _rank_test_p(cur, base)
    record.update(ratio=ratio, ci=[lo, hi], p_value=p)
    _apply_rule(record, ratio, lo, hi, p, threshold, alpha)
    return record


def process_blocks(latency: dict[str, Any] | None) -> list[np.ndarray] | None:
    """``normalized_blocks`` of every process that timed the case: the run's own pairs, then each
    replica's (``latency.replicas``, ``latency.processes``); None when the run's own are missing.

    A replica without usable pairs is left out (``latency.processes`` counts those with pairs).
    """
    own = normalized_blocks(latency)
    if own is None:
        return None
    out = [own]
    for replica in (latency or {}).get("replicas") or []:
        blocks = normalized_blocks(replica) if isinstance(replica, dict) else None
        if blocks is not None:
            out.append(blocks)
    return out


def _process_medians(procs: list[np.ndarray], rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Medians of n_boot resamples of one side: its processes with replacement, each kept whole.

    For nested data, resampling only the top level is the consistent choice: each process's
    blocks already carry its within-process noise, and resampling blocks again inside the
    resampled processes counts that noise twice (Davison & Hinkley, *Bootstrap Methods*, 3.8).
    Measured on this project's runs: with blocks resampled too, 1 of 5 base = head
    rehearsals came out "inconclusive" (ResNet-18 bf16 eager, CI 0.97-1.11); resampling
    processes only, 0 of 5, and 0 of 36 A/A pairs with every +15% and +20% run still
    caught (27 of 27 each). A side with one process has only its blocks to resample.
    """
    if len(procs) == 1:
        return _bootstrap_medians(procs[0], rng, n_boot)
    picked = rng.integers(0, len(procs), size=(n_boot, len(procs)))
    if len({p.size for p in procs}) == 1:  # the usual case, vectorised: every process cut into as many blocks
        return np.median(np.stack(procs)[picked].reshape(n_boot, -1), axis=1)
    return np.array([np.median(np.concatenate([procs[i] for i in row])) for row in picked])


def decide_processes(
    base_procs: Sequence[np.ndarray],
    cur_procs: Sequence[np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = BLOCK_ALPHA,
    rng_seed: int = 0,
    *,
    min_blocks: int = MIN_BLOCKS,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """The gate on block ratios from several processes per side: a bootstrap over processes.

    One process's blocks share its state: issue 27 measured a case's case/reference ratio
    moving 1-6% between processes, more than the block bootstrap within one process allows
    for, so a single process per side is over-confident (4 false "regressed" in 36 A/A
    pairs of runs). With several processes per side, the interval resamples processes
    (``_process_medians`` says why not blocks within them too), so it includes the
    variance between processes; the ratio is that of the pooled blocks' medians and the
    rank test runs on the pooled blocks. With one process on each side this is
    ``decide_blocks``. ``processes`` records how many each side had, and the reason says
    when a side had one: the variance between processes was not measured for it.
    """
    record = _decide_pooled(base_procs, cur_procs, threshold, alpha, rng_seed, min_blocks, n_boot)
    record["processes"] = [len(base_procs), len(cur_procs)]
    single = [side for side, procs in (("baseline", base_procs), ("current", cur_procs)) if len(procs) == 1]
    if single:
        record["reason"] += (f" [one process in {' and '.join(single)}: the variance between processes was not"
                             " measured (latency.processes)]")
    return record

