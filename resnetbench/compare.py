"""Regression gate: compare a current results file against a baseline, case by case.

Never imports torch: it reads results JSON only (see ``results.py``).

Latency: the paired gate (``decide_blocks`` on ``normalized_blocks``)
-------------------------------------------------------------------
A plain "fail if the median is 5% slower" gate cries wolf on shared CI machines, for two
reasons: the machine itself is faster or slower from one run to the next (here the
median of one unchanged model moves 10-20% between back-to-back runs), and a median of a
few dozen noisy samples moves by several percent on its own.

Every latency case therefore also times ``pairs`` [reference call, case call] pairs,
where the reference is a fixed ResNet-18 on the case's own backend
(``measure/reference.py`` says why that reference and what it tracks). Each pair's
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
are in the README. Results files without reference pairs (made by other tools, or edited)
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

Case decisions (``compare_results``): the gate fails closed
---------------------------------------------------------------
One record per case id found on either side, with one of ``DECISIONS``:

- ``failed``: the case failed or errored in the current run, also when it failed in the
  baseline too (a failure on both sides is still a failure), or is new and failing;
- ``regressed``: latency regressed (rule above), the artifact grew by more than
  ``size_tolerance``, or accuracy got worse (``accuracy.task.drop_points`` grew by more
  than ``accuracy_tolerance_points``; ``centered_cosine`` fell by more than 0.02 with its
  distance from 1 at least doubled; ``centered_rel_l2`` more than doubled and grew by more
  than 0.02; ``accuracy.metrics.rel_l2`` grew more than 10x to
  above 1e-4; ``cosine`` fell by more than 1e-3 with its distance from 1 at least doubled);
- ``missing``: the case ran in the baseline (passed or not) and is absent or skipped now:
  a vanished case, or one that newly skips because an extra is missing;
- ``unstable``: either side's latency record says its timing stayed unstable after
  re-timing (``measure/stability.py``): nothing can be decided from it;
- ``inconclusive``: the latency comparison could not decide (too noisy, too few blocks);
- ``new``: only in the current run, or skipped in the baseline and run now, and not failed;
- ``improved`` / ``unchanged``.

Cases skipped on both sides are ``unchanged`` ("skipped in both", with the reason, e.g.
no GPU). Every decision in ``BLOCKING`` fails the gate (exit 1) unless an allowance
names the case: ``gate: {allow: [{id: "resnet152-*", reason: "..."}]}`` in the current
run's matrix (recorded in its results file) or ``--allow 'PATTERN=REASON'``. Allowed
cases are printed with their reason; nothing is allowed silently.
"""

from __future__ import annotations

import fnmatch
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import numpy as np
from scipy.stats import mannwhitneyu

from resnetbench.results import ResultsError, load

# Worst news first. The gate fails closed: every decision in BLOCKING fails it unless an
# explicit allowance (``gate: {allow: [...]}`` in the matrix, or ``--allow``) names the case.
DECISIONS = (
    "failed",
    "regressed",
    "missing",
    "unstable",
    "inconclusive",
    "new",
    "improved",
    "unchanged",
)
BLOCKING = frozenset({"failed", "regressed", "missing", "unstable", "inconclusive"})
DECISION_LABELS = {
    "failed": "✖ FAILED",
    "regressed": "▲ REGRESSED",
    "missing": "− MISSING",
    "unstable": "~ UNSTABLE",
    "inconclusive": "? INCONCLUSIVE",
    "new": "+ new",
    "improved": "▼ improved",
    "unchanged": "= unchanged",
}
# 10% for every comparison, within one job or against a stored baseline: at 5% the
# case/reference ratio's own run-to-run movement (1.3-2% here) left A/A false alarms at
# about 1 in 100 in gate-check, the target's limit (README, "The regression gate, measured").
DEFAULT_THRESHOLD = 0.10
MIN_SAMPLES = 10
# The rank test's level. On raw samples (the fallback) 0.01. On 8 + 8 blocks the exact
# Mann-Whitney p-values are coarse (... 0.0070, 0.0104, 0.0148 ...), and 0.01 fell just
# below the step that one stray block causes: gate-check saw 20% slowdowns estimated at
# 1.27x (95% CI 1.13-1.34) passed as "not significant" at p = 0.0104. A/A pairs are kept
# out by the interval and the half-threshold floor, not by this level.
SAMPLE_ALPHA = 0.01
BLOCK_ALPHA = 0.02
CALIBRATION_CV_LIMIT = 0.10
REL_L2_GROWTH = 10.0
REL_L2_FLOOR = 1e-4
COSINE_FALL = 1e-3
# Centred cosine moves more with rounding than raw cosine (it measures the small
# input-dependent part): bf16 ResNets measured 0.58-0.996 across depths, stable run to run.
CENTERED_COSINE_FALL = 0.02
# Output error relative to the input-dependent part: regressed when it more than doubles
# and grows by at least 2% of that part (static int8 calibrated on one digits image instead
# of 64 measured 0.02 -> 0.15 with task top-1 unchanged).
CENTERED_REL_L2_GROWTH = 2.0
CENTERED_REL_L2_FLOOR = 0.02
N_BOOT = 2000
# Targets a gate must meet on A/A pairs and injected slowdowns (used by gate-check).
GATE_TARGETS: dict[str, Any] = {
    "false_positive_rate_max": 0.01,
    "min_aa_pairs": 100,
    "detection_rate_min": {"slow10": 0.80, "slow20": 0.95},
    # "the estimated ratio within +-3 points": read as the mean absolute error of the
    # estimates; the share of single estimates within it is reported beside it.
    "ratio_error_max": 0.03,
}

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


def _fmt_p(p: float | None) -> str:
    """p-value as short text: 0.034, 2e-09."""
    if p is None:
        return "p=n/a"
    if p < 1e-3:
        return f"p={p:.0e}"
    return f"p={p:.3f}".rstrip("0").rstrip(".") if p < 1 else "p=1"


def _fmt_ci(ci: Sequence[float] | None) -> str:
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
        p = float(mannwhitneyu(cur_n, base_n, alternative="two-sided").pvalue)
    record.update(ratio=ratio, ci=[lo, hi], p_value=p)

    stats = f"(95% CI {_fmt_ci([lo, hi])}), {_fmt_p(p)}"
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
    stats = f"(95% CI {_fmt_ci([lo, hi])}), {_fmt_p(p)}"
    up, half_up = 1 + threshold, 1 + threshold / 2
    if (lo < 1 < hi) and (hi > up or lo < 1 / up):
        record["reason"] = (
            f"too noisy to tell: ratio {ratio:.2f} but 95% CI {_fmt_ci([lo, hi])} holds both"
            f" no change and a {threshold:.0%} change, {_fmt_p(p)}"
        )
    elif p < alpha and lo > 1 and ratio >= half_up and hi >= up:
        record["decision"] = "regressed"
        record["reason"] = f"{ratio:.2f}x slower {stats}"
    elif p < alpha and hi < 1 and ratio <= 1 / half_up and lo <= 1 / up:
        record["decision"] = "improved"
        record["reason"] = f"{1 / ratio:.2f}x faster (ratio {ratio:.2f}, 95% CI {_fmt_ci([lo, hi])}), {_fmt_p(p)}"
    else:
        record["decision"] = "unchanged"
        if p >= alpha or lo <= 1 <= hi:
            why = "no significant change"
        else:
            why = f"within the {threshold:.0%} threshold"
        record["reason"] = f"{ratio:.2f}x {stats}: {why}"


MIN_BLOCKS = 4


def normalized_blocks(latency: dict[str, Any] | None) -> np.ndarray | None:
    """Per block of consecutive pairs, the median case/reference time ratio; None if not recorded.

    ``latency["paired"]`` holds ``reference_ms`` and ``case_ms`` (one reference call right
    before each case call, ``measure/reference.py``) and ``blocks``, the number of blocks
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
    base = _as_samples(base_blocks, "baseline blocks")
    cur = _as_samples(cur_blocks, "current blocks")
    record: dict[str, Any] = {
        "decision": "inconclusive", "ratio": None, "ci": None, "p_value": None, "reason": "",
        "n": [int(base.size), int(cur.size)], "unit": "blocks of case/reference ratios",
        "threshold": threshold, "alpha": alpha,
    }
    if min(base.size, cur.size) < min_blocks:
        record["reason"] = f"too few blocks (n={min(base.size, cur.size)} < {min_blocks})"
        return record
    ratio = float(np.median(cur) / np.median(base))
    rng = np.random.default_rng(rng_seed)
    boot = _bootstrap_medians(cur, rng, n_boot) / _bootstrap_medians(base, rng, n_boot)
    lo, hi = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    p = 1.0 if np.ptp(np.concatenate([base, cur])) == 0 else float(
        mannwhitneyu(cur, base, alternative="two-sided").pvalue)
    record.update(ratio=ratio, ci=[lo, hi], p_value=p)
    _apply_rule(record, ratio, lo, hi, p, threshold, alpha)
    return record


# --------------------------------------------------------------------------- case checks


def _get(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _number(value: Any, where: str) -> float | None:
    """A finite number, None when absent; raises ResultsError on anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ResultsError(f"{where} must be a number, got {value!r}")
    return float(value)


def _number_list(value: Any, where: str) -> list[float] | None:
    """A list of finite positive numbers, None when absent; raises ResultsError otherwise."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in value
    ):
        raise ResultsError(f"{where} must be a list of positive numbers")
    return [float(v) for v in value]


def _size_check(
    base: dict[str, Any], cur: dict[str, Any], tolerance: float, where: str
) -> dict[str, Any]:
    """Artifact bytes must not grow by more than tolerance."""
    b = _number(_get(base, "size", "artifact_bytes"), f"baseline {where}: size.artifact_bytes")
    c = _number(_get(cur, "size", "artifact_bytes"), f"current {where}: size.artifact_bytes")
    check: dict[str, Any] = {
        "name": "size",
        "status": "n/a",
        "baseline": b,
        "current": c,
        "detail": "",
    }
    if b is None or c is None or b <= 0:
        check["detail"] = "artifact size missing on a side"
        return check
    growth = c / b - 1
    if growth > tolerance:
        check["status"] = "regressed"
        check["detail"] = (
            f"artifact grew {growth:+.1%} ({b / 1e6:.2f} MB -> {c / 1e6:.2f} MB,"
            f" tolerance {tolerance:.0%})"
        )
    else:
        check["status"] = "ok"
        check["detail"] = f"artifact {growth:+.1%}"
    return check


def _accuracy_rules(tolerance_points: float) -> tuple[tuple[tuple[str, str], Any], ...]:
    """(path under ``accuracy``, rule) pairs; a rule returns what got worse, or None."""
    return (
        (("task", "drop_points"), lambda b, c: f"accuracy drop grew {b:.2f} -> {c:.2f} points"
         f" (tolerance {tolerance_points:g})" if c - b > tolerance_points else None),
        # Tiny float noise (1e-7 -> 1e-6) is a 10x growth that means nothing: need a floor.
        (("metrics", "rel_l2"), lambda b, c: f"rel_l2 grew {b:.2g} -> {c:.2g} (>{REL_L2_GROWTH:g}x)"
         if c > REL_L2_FLOOR and c > REL_L2_GROWTH * b else None),
        (("metrics", "cosine"), lambda b, c: f"cosine fell {b:.5f} -> {c:.5f}"
         if b - c > COSINE_FALL and (1 - c) >= 2 * (1 - b) else None),
        # The input-dependent part: what a damaged model loses first (measure/accuracy.py).
        (("metrics", "centered_cosine"), lambda b, c: f"centred cosine fell {b:.4f} -> {c:.4f}"
         if b - c > CENTERED_COSINE_FALL and (1 - c) >= 2 * (1 - b) else None),
        # The same artifact gives the same outputs run to run (same inputs, deterministic
        # kernels up to float noise), so a doubled error is a changed model; the floor keeps
        # fp32's 1e-6-sized noise out.
        (("metrics", "centered_rel_l2"), lambda b, c: f"error against the reference grew {b:.3g} -> {c:.3g}"
         " (centred rel-L2)" if c > CENTERED_REL_L2_GROWTH * b and c - b > CENTERED_REL_L2_FLOOR else None),
    )


def _accuracy_check(
    base: dict[str, Any], cur: dict[str, Any], tolerance_points: float, where: str
) -> dict[str, Any]:
    """Task accuracy drop and the output-level errors against the reference must not get worse."""
    problems: list[str] = []
    compared = 0
    values: dict[str, list[float | None]] = {}
    for path, worse in _accuracy_rules(tolerance_points):
        key = "accuracy." + ".".join(path)
        b = _number(_get(base, "accuracy", *path), f"baseline {where}: {key}")
        c = _number(_get(cur, "accuracy", *path), f"current {where}: {key}")
        values[path[-1]] = [b, c]
        if b is None or c is None:
            continue
        compared += 1
        problem = worse(b, c)
        if problem:
            problems.append(problem)

    status = "regressed" if problems else ("ok" if compared else "n/a")
    detail = "; ".join(problems) if problems else ("" if compared else "accuracy missing on a side")
    return {"name": "accuracy", "status": status, "values": values, "detail": detail}


def _latency_inputs(case: dict[str, Any], side: str) -> list[float] | None:
    """A case's latency samples, validated."""
    return _number_list(
        _get(case, "latency", "samples_ms"), f"{side} {case['id']}: latency.samples_ms"
    )


def _run_calibration(data: dict[str, Any], side: str) -> tuple[float, list[float] | None] | None:
    """(median, samples) of a run's calibration kernel, None when the file has none."""
    samples = _number_list(
        _get(data, "environment", "calibration", "samples_ms"),
        f"{side}: environment.calibration.samples_ms",
    )
    median = _number(
        _get(data, "environment", "calibration", "median_ms"),
        f"{side}: environment.calibration.median_ms",
    )
    if samples:
        return float(np.median(samples)), samples
    if median is not None and median > 0:
        return median, None
    return None


def _cases_by_id(data: dict[str, Any], side: str) -> dict[str, dict[str, Any]]:
    """Cases keyed by id, in file order; a repeated id keeps the last (as merge does)."""
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ResultsError(f"{side}: not a resnetbench results file (no 'cases' list)")
    out: dict[str, dict[str, Any]] = {}
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise ResultsError(f"{side}: cases[{i}] has no string 'id'")
        out[case["id"]] = case
    return out


def fingerprint_warning(baseline: dict[str, Any], current: dict[str, Any]) -> str | None:
    """A warning when the two runs were not measured on the same machine and libraries."""
    fb = _get(baseline, "environment", "fingerprint")
    fc = _get(current, "environment", "fingerprint")
    hb, hc = _get(fb, "hash"), _get(fc, "hash")
    if hb is None or hc is None:
        missing = " and ".join(s for s, h in (("baseline", hb), ("current", hc)) if h is None)
        return (
            f"no machine fingerprint in {missing}: cannot tell whether both runs used the same"
            " machine and libraries; latency ratios may reflect the environment, not the model"
        )
    if hb == hc:
        return None
    diffs = [f"{key}: {old!r} -> {new!r}" for key, old, new in _flat_diff(fb, fc) if key != "hash"]
    shown = "; ".join(diffs[:6]) + (f"; ... {len(diffs) - 6} more" if len(diffs) > 6 else "")
    return (
        f"baseline and current ran on different machines or libraries (fingerprint {hb} != {hc})"
        f"{': ' + shown if shown else ''};"
        " latency ratios may reflect the environment, not the model"
    )


def _flat_diff(a: Any, b: Any, prefix: str = "") -> Iterable[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs between two nested objects."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            yield from _flat_diff(a.get(key), b.get(key), f"{prefix}{key}.")
    elif a != b:
        yield prefix.rstrip("."), a, b


def compare_results(
    baseline: dict[str, Any],
    current: dict[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float | None = None,
    size_tolerance: float = 0.02,
    accuracy_tolerance_points: float = 0.5,
    *,
    strict: bool = False,
    rng_seed: int = 0,
    allow: Sequence[dict[str, str]] = (),
) -> list[dict[str, Any]]:
    """Compare two loaded results files; one record per case id found on either side.

    Each record has ``id``, ``decision`` (one of ``DECISIONS``), ``ratio``, ``ci``,
    ``p_value``, ``reason``, ``checks`` (size and accuracy check dicts with ``status``
    ok | regressed | n/a), ``outcome`` ([baseline, current]), ``latency`` (the full
    latency decision or None) and ``allowed`` (the reason of the allowance that names a
    blocking case, else None). Allowances come from ``allow`` and from the current run's
    ``gate.allow``. Records come in baseline order, then cases new in current. With
    ``strict``, differing (or missing) fingerprints raise ResultsError instead of only
    producing a warning (see ``fingerprint_warning``).

    Example::

        records = compare_results(load("reports/baseline.json"), load("reports/results.json"))
        if blocking(records): ...
    """
    if strict:
        warning = fingerprint_warning(baseline, current)
        if warning:
            raise ResultsError(f"refusing to compare (--strict): {warning}")
    base_cases = _cases_by_id(baseline, "baseline")
    cur_cases = _cases_by_id(current, "current")
    cal_b = _run_calibration(baseline, "baseline")
    cal_c = _run_calibration(current, "current")
    allowances = [*allowances_of(current), *allow]
    records = []
    for case_id in list(base_cases) + [k for k in cur_cases if k not in base_cases]:
        b, c = base_cases.get(case_id), cur_cases.get(case_id)
        if b is None or c is None:
            record = _one_sided(case_id, b, c)
        else:
            record = _compare_case(b, c, cal_b, cal_c, threshold, alpha, size_tolerance,
                                   accuracy_tolerance_points, rng_seed)
        if record["decision"] in BLOCKING:
            record["allowed"] = next(
                (a["reason"] for a in allowances if fnmatch.fnmatchcase(case_id, a["id"])), None)
        records.append(record)
    return records


def allowances_of(results: dict[str, Any]) -> list[dict[str, str]]:
    """The ``gate.allow`` entries a results file carries (from its matrix), validated."""
    allow = _get(results, "gate", "allow") or []
    if not isinstance(allow, list) or not all(
        isinstance(a, dict) and isinstance(a.get("id"), str) and isinstance(a.get("reason"), str) and a["reason"]
        for a in allow
    ):
        raise ResultsError("current: gate.allow must be a list of {id: PATTERN, reason: TEXT}")
    return [{"id": a["id"], "reason": a["reason"]} for a in allow]


def parse_allow(text: str) -> dict[str, str]:
    """``'resnet152-*=reason'`` -> {id, reason}; raises ResultsError without a reason."""
    pattern, _, reason = text.partition("=")
    if not pattern.strip() or not reason.strip():
        raise ResultsError(f"--allow {text!r}: expected PATTERN=REASON, e.g. 'resnet152-*=too slow for this runner'")
    return {"id": pattern.strip(), "reason": reason.strip()}


def blocking(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that fail the gate: a blocking decision that no allowance names."""
    return [r for r in records if r["decision"] in BLOCKING and not r.get("allowed")]


def _record(case_id: str, decision: str, reason: str, **extra: Any) -> dict[str, Any]:
    """A record with every key present."""
    record: dict[str, Any] = {
        "id": case_id,
        "decision": decision,
        "ratio": None,
        "ci": None,
        "p_value": None,
        "reason": reason,
        "checks": [],
        "outcome": [None, None],
        "latency": None,
        "allowed": None,
    }
    record.update(extra)
    return record


def _why(case: dict[str, Any]) -> str:
    reason = case.get("reason") or ""
    return f": {reason}" if reason else ""


def _one_sided(case_id: str, b: dict[str, Any] | None, c: dict[str, Any] | None) -> dict[str, Any]:
    """A case found on one side only."""
    outcomes = [_get(b, "outcome"), _get(c, "outcome")]
    if c is None:
        assert b is not None
        if b.get("outcome") == "skipped":
            return _record(case_id, "unchanged", f"not in current; skipped in baseline{_why(b)}", outcome=outcomes)
        return _record(case_id, "missing", f"{b.get('outcome')} in baseline, absent now: the case vanished",
                       outcome=outcomes)
    if c.get("outcome") in ("failed", "error"):
        return _record(case_id, "failed", f"new case, {c['outcome']}{_why(c)}", outcome=outcomes)
    return _record(case_id, "new", f"only in current ({c.get('outcome')})", outcome=outcomes)


def _stability(case: dict[str, Any]) -> str | None:
    """A latency record's stability verdict (stable | retimed | unstable), None when not recorded."""
    verdict = _get(case, "latency", "stability", "verdict")
    return verdict if isinstance(verdict, str) else None


def _compare_case(
    b: dict[str, Any],
    c: dict[str, Any],
    cal_b: tuple[float, list[float] | None] | None,
    cal_c: tuple[float, list[float] | None] | None,
    threshold: float,
    alpha: float | None,
    size_tolerance: float,
    accuracy_tolerance_points: float,
    rng_seed: int,
) -> dict[str, Any]:
    """Decide one case present on both sides (module docstring, "Case decisions")."""
    case_id = c["id"]
    ob, oc = b.get("outcome"), c.get("outcome")
    record = _record(case_id, "unchanged", "", outcome=[ob, oc])
    if ob == "skipped" and oc == "skipped":
        record["reason"] = f"skipped in both{_why(c)}"
        return record

    found: dict[str, list[str]] = {d: [] for d in DECISIONS}
    if oc in ("failed", "error"):
        both = " (also in baseline)" if ob in ("failed", "error") else f" ({ob} in baseline)"
        found["failed"].append(f"{oc} now{both}{_why(c)}")
    elif ob in ("failed", "error") and oc == "passed":
        found["improved"].append(f"{ob} in baseline, passes now")
    if oc == "skipped":
        found["missing"].append(f"{ob} in baseline, skipped now{_why(c)}")
    elif ob == "skipped":
        found["new"].append(f"skipped in baseline{_why(b)}; runs now")

    where = f"case {case_id}"
    record["checks"] = [
        _size_check(b, c, size_tolerance, where),
        _accuracy_check(b, c, accuracy_tolerance_points, where),
    ]
    found["regressed"].extend(ch["detail"] for ch in record["checks"] if ch["status"] == "regressed")

    unstable = [side for side, case in (("baseline", b), ("current", c)) if _stability(case) == "unstable"]
    sb, sc = _latency_inputs(b, "baseline"), _latency_inputs(c, "current")
    blocks_b, blocks_c = normalized_blocks(b.get("latency")), normalized_blocks(c.get("latency"))
    lat: dict[str, Any] | None = None
    if unstable:
        found["unstable"].append(f"latency unstable in {' and '.join(unstable)} (stayed unstable after re-timing):"
                                 " not compared")
    elif blocks_b is not None and blocks_c is not None:
        lat = decide_blocks(blocks_b, blocks_c, threshold=threshold, alpha=alpha or BLOCK_ALPHA, rng_seed=rng_seed)
    elif sb is not None and sc is not None:
        if cal_b is not None and cal_c is not None:
            cb: Any = cal_b[1] if cal_b[1] is not None else cal_b[0]
            cc: Any = cal_c[1] if cal_c[1] is not None else cal_c[0]
        else:
            cb = cc = 1.0
            found["unchanged"].append("no calibration on a side: raw times compared")
        lat = decide_latency(sb, sc, cb, cc, threshold=threshold, alpha=alpha or SAMPLE_ALPHA, rng_seed=rng_seed)
    if lat is not None:
        record.update(latency=lat, ratio=lat["ratio"], ci=lat["ci"], p_value=lat["p_value"])
        found[lat["decision"]].append(f"latency {lat['reason']}")
    elif (sb is None) != (sc is None) and "skipped" not in (ob, oc) and not unstable:
        found["inconclusive"].append(f"no latency samples in {'current' if sc is None else 'baseline'}")

    decision = next((d for d in DECISIONS if found[d] and d != "unchanged"), "unchanged")
    parts = found[decision] + [p for d in DECISIONS if d != decision for p in found[d]]
    record["decision"] = decision
    record["reason"] = "; ".join(parts) or "no latency, size or accuracy data to compare"
    return record


# --------------------------------------------------------------------------- output


def format_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table, one row per case, worst news first; allowed cases say so."""
    order = {d: i for i, d in enumerate(DECISIONS)}
    rows = sorted(records, key=lambda r: order.get(r["decision"], len(order)))
    header = ("case", "decision", "ratio", "95% CI", "p", "reason")
    body = [
        (
            r["id"],
            r["decision"] + (" (allowed)" if r.get("allowed") else ""),
            "-" if r.get("ratio") is None else f"{r['ratio']:.3f}",
            "-" if r.get("ci") is None else _fmt_ci(r["ci"]),
            "-" if r.get("p_value") is None else _fmt_p(r["p_value"])[2:],
            r.get("reason", ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *body]:
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[-1]))
    allowed = [r for r in rows if r.get("allowed")]
    if allowed:
        lines.append("")
        lines.append("Allowed (blocking decisions that an allowance names):")
        lines.extend(f"  {r['id']} ({r['decision']}): {r['allowed']}" for r in allowed)
    return "\n".join(lines)


def summary_line(records: list[dict[str, Any]]) -> str:
    """One line of counts and the gate's verdict: '5 cases: 1 failed, 4 unchanged -> gate FAILED'."""
    counts = Counter(r["decision"] for r in records)
    parts = [f"{counts[d]} {d}" for d in DECISIONS if counts[d]]
    allowed = sum(1 for r in records if r.get("allowed"))
    if allowed:
        parts.append(f"{allowed} allowed")
    verdict = "gate FAILED" if blocking(records) else "gate passed"
    return f"{len(records)} cases: " + (", ".join(parts) if parts else "none") + f" -> {verdict}"


def main_compare(
    baseline_path: str,
    current_path: str,
    threshold: float | None,
    strict: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
    allow: Sequence[str] = (),
) -> int:
    """Run ``resnetbench compare``: 0 every case unchanged, improved, new or allowed; 1 otherwise; 2 bad input.

    Bad input (a missing, unreadable or malformed file, a bad threshold or ``--allow``, or
    differing fingerprints under ``strict``) prints one line to ``err`` (default stderr)
    and no traceback.

    Example (the CLI's ``compare`` subcommand)::

        sys.exit(main_compare(args.baseline, args.current, args.threshold, args.strict, allow=args.allow))
    """
    out = out if out is not None else sys.stdout  # resolved at call time (capture, redirects)
    err = sys.stderr if err is None else err
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    try:
        if not (isinstance(threshold, (int, float)) and 0 < threshold < 10):
            raise ResultsError(
                f"--threshold must be a positive fraction such as 0.1, got {threshold!r}"
            )
        allowances = [parse_allow(a) for a in allow]
        baseline = load(baseline_path)
        current = load(current_path)
        warning = fingerprint_warning(baseline, current)
        records = compare_results(baseline, current, threshold=threshold, strict=strict, allow=allowances)
    except ResultsError as exc:
        print(f"resnetbench compare: error: {exc}", file=err)
        return 2
    if warning:
        bar = "!" * 78
        print(f"{bar}\nWARNING: {warning}\n{bar}", file=out)
    print(format_table(records), file=out)
    print(summary_line(records) + f" (threshold {threshold:.0%})", file=out)
    return 1 if blocking(records) else 0


# --------------------------------------------------------------------------- gate check


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
