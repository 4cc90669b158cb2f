"""The one-screen Markdown summary for $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from resnetbench.recommendations import judge_all
from resnetbench.records import DECISIONS, unstable_cases
from resnetbench.report.cells import (
    _accuracy_text,
    _artifact_mb,
    _axis_key,
    _blocking,
    _delta_rows,
    _duration,
    _fmt,
    _fmt_ms,
    _machine,
    _median_ms,
    _undecidable_cases,
    counts,
)

# Markdown summary budget: GitHub's step summary should fit on one screen.
MD_MAX_REGRESSIONS = 6
MD_MAX_ARCHS = 5
MD_MAX_CLAIMS = 6


def _md(text: Any, limit: int = 80) -> str:
    """Text made safe for a Markdown table cell: no pipes, newlines or raw HTML."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
    return lines


def render_markdown(results: dict[str, Any], comparison: list[dict[str, Any]] | None = None) -> str:
    """A one-screen Markdown summary (at most ~40 lines) for $GITHUB_STEP_SUMMARY.

    Outcome counts, regressions when ``comparison`` is given, the fastest passed
    configuration per architecture, and the claims verdicts. Example::

        Path(os.environ["GITHUB_STEP_SUMMARY"]).write_text(render_markdown(results))
    """
    cases = list(results.get("cases", []))
    tally = counts(results)
    lines = [
        "### resnetbench: "
        + " · ".join(f"{n} {o}" for o, n in tally.items())
        + f" ({len(cases)} cases)",
        "",
    ]
    environment = results.get("environment") or {}
    machine = _machine(environment)
    meta = [str(machine["cpu_model"] or "unknown CPU")]
    if machine["threads"] is not None:
        meta[0] += f", {machine['threads']} threads"
    if results.get("started"):
        meta.append(f"started {results['started']}")
    duration = _duration(results.get("started"), results.get("finished"))
    if duration:
        meta.append(f"took {duration}")
    if results.get("matrix_file"):
        meta.append(f"matrix {results['matrix_file']}")
    lines += [_md(" · ".join(meta), 300), ""]
    for what, flagged in (
        ("timing(s) stayed unstable after re-timing: their latency is not a result", unstable_cases(cases)),
        ("accuracy verdict(s) undecidable (counted as failed)", _undecidable_cases(cases)),
    ):
        if flagged:
            lines += [f"**⚠ {len(flagged)} {what}:**", ""]
            lines += [f"- `{_md(cid, 80)}`: {_md(why, 200)}" for cid, why in flagged[:MD_MAX_REGRESSIONS]]
            lines.append("")

    if comparison is not None:
        decided = Counter(str(e.get("decision")) for e in comparison)
        counted = ", ".join(f"{decided[d]} {d}" for d in DECISIONS if decided[d])
        failing = _blocking(comparison)
        lines += [
            f"**Gate: {'FAILED' if failing else 'passed'}** — {len(failing)} blocking of {len(comparison)}"
            f" compared ({counted})",
            "",
        ]
        rows = _delta_rows(comparison, results, None)
        shown = [r for r in rows if r["blocking"]]
        if shown:
            lines += _md_table(
                ("case", "decision", "ratio", "95% CI", "why"),
                [(r["id"], r["decision"], r["ratio"], r["ci"], r["reason"]) for r in shown[:MD_MAX_REGRESSIONS]],
            )
            if len(shown) > MD_MAX_REGRESSIONS:
                lines.append(f"…and {len(shown) - MD_MAX_REGRESSIONS} more in the HTML report")
            lines.append("")
        allowed = [r for r in rows if r["allowed"]]
        if allowed:
            lines += ["Allowed by the matrix or `--allow` (not failing the gate):", ""]
            lines += [f"- `{_md(r['id'], 80)}` ({r['decision']}): {_md(r['allowed'], 200)}" for r in allowed]
            lines.append("")

    best: dict[str, Mapping[str, Any]] = {}
    for case in cases:
        median = _median_ms(case)
        if case.get("outcome") != "passed" or median is None:
            continue
        arch = str(case.get("arch"))
        if arch not in best or median < _median_ms(best[arch]):  # type: ignore[operator]
            best[arch] = case
    if best:
        archs = sorted(best, key=_axis_key)
        lines += [
            "**Best configuration per architecture** (lowest median latency, passed)",
            "",
        ]
        lines += _md_table(
            ("arch", "case", "median ms", "artifact MB", "accuracy"),
            [
                (
                    a,
                    best[a].get("id"),
                    _fmt_ms(_median_ms(best[a])),
                    _fmt(_artifact_mb(best[a]), ".2f"),
                    _accuracy_text(best[a]),
                )
                for a in archs[:MD_MAX_ARCHS]
            ],
        )
        if len(archs) > MD_MAX_ARCHS:
            lines.append(f"…and {len(archs) - MD_MAX_ARCHS} more in the HTML report")
        lines.append("")

    claims = list(results.get("claims") or []) + judge_all(results, decided_only=True)  # C10-C12 (recommendations.py)
    if claims:
        verdicts = Counter(str(c.get("verdict")) for c in claims)
        mismatched = [c for c in claims if c.get("verdict") != c.get("expected_verdict")]
        lines += [
            "**Claims**: "
            + ", ".join(f"{n} {_md(v, 30)}" for v, n in sorted(verdicts.items()))
            + f"; {len(mismatched)} differ from the expected verdict",
            "",
        ]
        # Surprises first: a claim whose verdict changed is the news.
        ordered = mismatched + [c for c in claims if c not in mismatched]
        lines += _md_table(
            ("id", "claim", "measured", "verdict", "expected"),
            [
                (
                    c.get("id"),
                    c.get("claim"),
                    c.get("measured"),
                    ("⚠ " if c in mismatched else "") + str(c.get("verdict")),
                    c.get("expected_verdict"),
                )
                for c in ordered[:MD_MAX_CLAIMS]
            ],
        )
        if len(claims) > MD_MAX_CLAIMS:
            lines.append(f"…and {len(claims) - MD_MAX_CLAIMS} more in the HTML report")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
