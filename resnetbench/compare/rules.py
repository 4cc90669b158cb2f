"""The gate's case rules: one decision per case id from two loaded results files.

Latency is decided by ``resnetbench.stats`` (its docstring explains the paired gate);
this module adds what a case can get wrong besides latency (size, accuracy, outcome),
the fingerprint warning and the allowances. Never imports torch.

Case decisions (``compare_results``): the gate fails closed
---------------------------------------------------------------
One record per case id found on either side, with one of ``DECISIONS``:

- ``failed``: the case failed or errored in the current run, also when it failed in the
  baseline too (a failure on both sides is still a failure), or is new and failing;
- ``regressed``: latency regressed (``stats``, step 3), the artifact grew by more than
  ``size_tolerance``, cold start or peak memory grew past the matrix's
  ``gate.cold_start_threshold`` / ``gate.memory_threshold`` (default 25%) and a floor, in
  every run (``_deployment_checks``; overlapping runs are ``inconclusive``), LoadGen's Offline
  throughput or Server capacity fell past ``gate.capacity_threshold`` (default 10%;
  ``compare/capacity.py``), or accuracy got worse (``accuracy.task.drop_points`` grew by more
  than ``accuracy_tolerance_points``; ``centered_cosine`` fell by more than 0.02 with its
  distance from 1 at least doubled; ``centered_rel_l2`` more than doubled and grew by more
  than 0.02; ``accuracy.metrics.rel_l2`` grew more than 10x to
  above 1e-4; ``cosine`` fell by more than 1e-3 with its distance from 1 at least doubled);
- ``missing``: the case ran in the baseline (passed or not) and is absent or skipped now:
  a vanished case, or one that newly skips because an extra is missing;
- ``unstable``: either side's latency record says its timing stayed unstable after
  re-timing (``measure/stability.py``): nothing can be decided from it;
- ``inconclusive``: the latency comparison could not decide (too noisy, too few blocks), or
  must not: the case ran another recipe, or was paired with another reference, than in the
  baseline (the reference follows the case's recipe, so the ratios measure different things);
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
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from resnetbench.backends.profile import blame, format_blame
from resnetbench.compare.capacity import capacity_checks
from resnetbench.records import BLOCKING, DECISIONS, lookup
from resnetbench.results import ResultsError
from resnetbench.settings import GateSettings
from resnetbench.stats import (
    BLOCK_ALPHA,
    DEFAULT_THRESHOLD,
    SAMPLE_ALPHA,
    decide_latency,
    decide_processes,
    process_blocks,
)

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


# --------------------------------------------------------------------------- case checks

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
    b = _number(lookup(base, "size", "artifact_bytes"), f"baseline {where}: size.artifact_bytes")
    c = _number(lookup(cur, "size", "artifact_bytes"), f"current {where}: size.artifact_bytes")
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


# Deployment quantities (measure/deployment.py): (key, unit, floor). A change counts only when
# it passes the threshold *and* the floor: tiny models load in ~50 MB and start in ~2 s,
# where 25% is within what imports and page cache move between runs.
DEPLOYMENT_QUANTITIES = (("load_peak_mb", "MB", 32.0), ("inference_peak_mb", "MB", 32.0), ("cold_start_s", "s", 0.25))
DEFAULT_DEPLOYMENT_THRESHOLDS = {"memory": GateSettings().memory_threshold,  # the gate section's defaults
                                 "cold_start": GateSettings().cold_start_threshold,
                                 "capacity": GateSettings().capacity_threshold}


def _deployment_samples(case: dict[str, Any], key: str, where: str) -> list[float]:
    samples = lookup(case, "deployment", "samples") or []
    if not isinstance(samples, list):
        raise ResultsError(f"{where}: deployment.samples must be a list")
    values = [_number(s.get(key), f"{where}: deployment.samples[].{key}") if isinstance(s, dict) else None
              for s in samples]
    return [v for v in values if v is not None]


def _deployment_checks(base: dict[str, Any], cur: dict[str, Any], thresholds: dict[str, float],
                       where: str) -> list[dict[str, Any]]:
    """Cold start and memory gated like latency, failing closed.

    Regressed: the median grew by more than the threshold and the floor, and every current
    sample is above every baseline sample. The same growth with overlapping samples is
    inconclusive (it blocks too); a quantity measured in the baseline and not now is as well.
    """
    checks = []
    for key, unit, floor in DEPLOYMENT_QUANTITIES:
        threshold = thresholds["cold_start" if key == "cold_start_s" else "memory"]
        b = _deployment_samples(base, key, f"baseline {where}")
        c = _deployment_samples(cur, key, f"current {where}")
        check: dict[str, Any] = {"name": key, "status": "n/a", "baseline": None, "current": None, "detail": ""}
        checks.append(check)
        if not b:
            continue
        if not c:
            check.update(status="inconclusive", detail=f"{key} measured in the baseline, not now")
            continue
        mb, mc = float(np.median(b)), float(np.median(c))
        check.update(baseline=mb, current=mc)
        grew = mc - mb > floor and (mb <= 0 or mc / mb - 1 > threshold)
        change = f"{key} {mb:.2f} -> {mc:.2f} {unit} (median of {len(b)} and {len(c)} runs"
        if not grew:
            check.update(status="ok", detail=f"{change})")
        elif min(c) > max(b):
            check.update(status="regressed", detail=f"{change}, above {threshold:.0%} and {floor:g} {unit}; "
                                                    f"every run above every baseline run)")
        else:
            check.update(status="inconclusive", detail=f"{change}: grew past {threshold:.0%} and {floor:g} {unit}, "
                                                       f"but the runs overlap)")
    return checks


def _blame(base: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any] | None:
    """The units a latency regression added its time in, when both sides carry a profile."""
    bp, cp = lookup(base, "latency", "profile"), lookup(cur, "latency", "profile")
    if not isinstance(bp, dict) or not isinstance(cp, dict) or not bp.get("units") or not cp.get("units"):
        return None
    return {**blame(bp, cp), "profiler": cp.get("profiler")}


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
        b = _number(lookup(base, "accuracy", *path), f"baseline {where}: {key}")
        c = _number(lookup(cur, "accuracy", *path), f"current {where}: {key}")
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
        lookup(case, "latency", "samples_ms"), f"{side} {case['id']}: latency.samples_ms"
    )


def _run_calibration(data: dict[str, Any], side: str) -> tuple[float, list[float] | None] | None:
    """(median, samples) of a run's calibration kernel, None when the file has none."""
    samples = _number_list(
        lookup(data, "environment", "calibration", "samples_ms"),
        f"{side}: environment.calibration.samples_ms",
    )
    median = _number(
        lookup(data, "environment", "calibration", "median_ms"),
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
    fb = lookup(baseline, "environment", "fingerprint")
    fc = lookup(current, "environment", "fingerprint")
    hb, hc = lookup(fb, "hash"), lookup(fc, "hash")
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
    deployment_thresholds = {
        kind: _number(lookup(current, "gate", f"{kind}_threshold"), f"current: gate.{kind}_threshold") or default
        for kind, default in DEFAULT_DEPLOYMENT_THRESHOLDS.items()}
    records = []
    for case_id in list(base_cases) + [k for k in cur_cases if k not in base_cases]:
        b, c = base_cases.get(case_id), cur_cases.get(case_id)
        if b is None or c is None:
            record = _one_sided(case_id, b, c)
        else:
            record = _compare_case(b, c, cal_b, cal_c, threshold, alpha, size_tolerance,
                                   accuracy_tolerance_points, rng_seed, deployment_thresholds)
        if record["decision"] in BLOCKING:
            record["allowed"] = next(
                (a["reason"] for a in allowances if fnmatch.fnmatchcase(case_id, a["id"])), None)
        records.append(record)
    return records


def allowances_of(results: dict[str, Any]) -> list[dict[str, str]]:
    """The ``gate.allow`` entries a results file carries (from its matrix), validated."""
    allow = lookup(results, "gate", "allow") or []
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
    outcomes = [lookup(b, "outcome"), lookup(c, "outcome")]
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
    verdict = lookup(case, "latency", "stability", "verdict")
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
    deployment_thresholds: dict[str, float] = DEFAULT_DEPLOYMENT_THRESHOLDS,
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
        *_deployment_checks(b, c, deployment_thresholds, where),
        *capacity_checks(b, c, deployment_thresholds["capacity"], where),
    ]
    found["regressed"].extend(ch["detail"] for ch in record["checks"] if ch["status"] == "regressed")
    found["inconclusive"].extend(ch["detail"] for ch in record["checks"] if ch["status"] == "inconclusive")

    unstable = [side for side, case in (("baseline", b), ("current", c)) if _stability(case) == "unstable"]
    sb, sc = _latency_inputs(b, "baseline"), _latency_inputs(c, "current")
    blocks_b, blocks_c = process_blocks(b.get("latency")), process_blocks(c.get("latency"))
    lat: dict[str, Any] | None = None
    recipes = (lookup(b, "latency", "runtime", "recipe"), lookup(c, "latency", "runtime", "recipe"))
    recipe_changed = None not in recipes and recipes[0] != recipes[1]
    if recipe_changed:
        # Tuning (tuning.py) chose another way to run the same artifact: a likely cause.
        record["recipe_change"] = list(recipes)
    references = (lookup(b, "latency", "paired", "reference_key"), lookup(c, "latency", "paired", "reference_key"))
    if unstable:
        found["unstable"].append(f"latency unstable in {' and '.join(unstable)} (stayed unstable after re-timing):"
                                 " not compared")
    elif blocks_b is not None and blocks_c is not None and (recipe_changed or references[0] != references[1]):
        # The reference runs the case's recipe (measure/latency_reference.py): across a recipe change,
        # or against a reference of another kind, the case/reference ratios measure different things.
        why = (f"recipe changed {recipes[0]} -> {recipes[1]} (artifact.tuning says why; tuning.recipes pins one)"
               if recipe_changed else f"the reference differs: {references[0]} -> {references[1]}")
        found["inconclusive"].append(f"latency not compared: {why}, so the case/reference ratios are not comparable")
    elif blocks_b is not None and blocks_c is not None:
        lat = decide_processes(blocks_b, blocks_c, threshold=threshold, alpha=alpha or BLOCK_ALPHA,
                               rng_seed=rng_seed)
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
        text = f"latency {lat['reason']}"
        if lat["decision"] == "regressed":
            where_slower = _blame(b, c)
            if where_slower is not None:
                record["blame"] = where_slower
                text += f"; where: {format_blame(where_slower)}"
        if recipe_changed:
            text += f"; recipe changed {recipes[0]} -> {recipes[1]} (artifact.tuning says why)"
        found[lat["decision"]].append(text)
    elif (sb is None) != (sc is None) and "skipped" not in (ob, oc) and not unstable:
        found["inconclusive"].append(f"no latency samples in {'current' if sc is None else 'baseline'}")

    decision = next((d for d in DECISIONS if found[d] and d != "unchanged"), "unchanged")
    parts = found[decision] + [p for d in DECISIONS if d != decision for p in found[d]]
    record["decision"] = decision
    # A case compared only on checks that passed (a LoadGen-only run: capacity) says so, not "nothing compared".
    passed = [ch["detail"] for ch in record["checks"] if ch["status"] == "ok" and ch["detail"]]
    record["reason"] = "; ".join(parts or passed) or "no latency, size or accuracy data to compare"
    return record
