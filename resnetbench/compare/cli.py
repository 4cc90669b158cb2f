"""``resnetbench compare BASELINE CURRENT``: the gate on two results files, as a command."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from resnetbench.compare.rules import blocking, compare_results, fingerprint_warning, parse_allow
from resnetbench.compare.text import format_table, summary_line
from resnetbench.results import ResultsError, load
from resnetbench.stats import DEFAULT_THRESHOLD


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
