"""Regression gate: compare a current results file against a baseline, case by case.

Never imports torch: it reads results JSON only (see ``results.py``).

- ``resnetbench.stats``: the latency statistics (the paired gate ``decide_blocks`` on
  ``normalized_blocks``, the sample-level fallback ``decide_latency``); its docstring
  explains the method and its measured error rates;
- ``rules``: the case decisions (outcome, size, accuracy, latency), the fingerprint
  warning and the allowances: ``compare_results``, ``blocking``;
- ``text``: ``format_table`` and ``summary_line``;
- ``cli``: ``main_compare``, the ``resnetbench compare`` command.

The decision vocabulary (``DECISIONS``, ``BLOCKING``, ``DECISION_LABELS``) is defined in
``resnetbench.records``. Every public name is importable from ``resnetbench.compare``.

Example::

    from resnetbench.compare import blocking, compare_results
    from resnetbench.results import load

    records = compare_results(load("reports/baseline.json"), load("reports/results.json"))
    if blocking(records): ...
"""

from __future__ import annotations

from resnetbench.compare.cli import main_compare
from resnetbench.compare.rules import (
    CENTERED_COSINE_FALL,
    CENTERED_REL_L2_FLOOR,
    CENTERED_REL_L2_GROWTH,
    COSINE_FALL,
    REL_L2_FLOOR,
    REL_L2_GROWTH,
    allowances_of,
    blocking,
    compare_results,
    fingerprint_warning,
    parse_allow,
)
from resnetbench.compare.text import format_table, summary_line
from resnetbench.records import BLOCKING, DECISION_LABELS, DECISIONS
from resnetbench.stats import (
    BLOCK_ALPHA,
    CALIBRATION_CV_LIMIT,
    DEFAULT_THRESHOLD,
    MIN_BLOCKS,
    MIN_SAMPLES,
    N_BOOT,
    SAMPLE_ALPHA,
    decide_blocks,
    decide_latency,
    normalized_blocks,
    robust_cv,
)

__all__ = [
    "BLOCKING",
    "BLOCK_ALPHA",
    "CALIBRATION_CV_LIMIT",
    "CENTERED_COSINE_FALL",
    "CENTERED_REL_L2_FLOOR",
    "CENTERED_REL_L2_GROWTH",
    "COSINE_FALL",
    "DECISIONS",
    "DECISION_LABELS",
    "DEFAULT_THRESHOLD",
    "MIN_BLOCKS",
    "MIN_SAMPLES",
    "N_BOOT",
    "REL_L2_FLOOR",
    "REL_L2_GROWTH",
    "SAMPLE_ALPHA",
    "allowances_of",
    "blocking",
    "compare_results",
    "decide_blocks",
    "decide_latency",
    "fingerprint_warning",
    "format_table",
    "main_compare",
    "normalized_blocks",
    "parse_allow",
    "robust_cv",
    "summary_line",
]
