"""A/A and injected slowdowns through the real flow: ``resnetbench gate-check --real-flow`` as a script.

    python benchmarks/aa_real_flow.py --runs 9 --slow 0.15:3 --slow 0.20:3 --out reports/aa/aa.json

(``resnetbench/tools/realflow.py`` says what it runs and measures.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from resnetbench.tools.realflow import series

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", default=str(HERE / "aa.yaml"))
    ap.add_argument("--runs", type=int, default=4, help="unchanged runs")
    ap.add_argument("--slow", action="append", default=[], metavar="FRACTION:RUNS",
                    help="runs with every case slowed by FRACTION (repeatable)")
    ap.add_argument("--marks", default="size or accuracy or latency")
    ap.add_argument("--out", default="reports/aa-real-flow.json")
    ap.add_argument("--hog-after", type=float, default=None)
    ap.add_argument("--hog-seconds", type=float, default=25.0)
    args = ap.parse_args()
    summary = series(args.matrix, args.runs, args.slow, Path(args.out), args.marks, args.hog_after, args.hog_seconds)
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("_ratios")}, indent=1))
    return 0 if all(t["met"] for t in summary["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
