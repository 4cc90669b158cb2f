"""The gate's decisions as text: the per-case table and the one-line verdict."""

from __future__ import annotations

from collections import Counter
from typing import Any

from resnetbench.compare.rules import blocking
from resnetbench.records import DECISIONS
from resnetbench.stats import fmt_ci, fmt_p


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
            "-" if r.get("ci") is None else fmt_ci(r["ci"]),
            "-" if r.get("p_value") is None else fmt_p(r["p_value"])[2:],
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
