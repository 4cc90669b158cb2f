"""A/A through the real flow: run one unchanged matrix N times with ``pytest --matrix``, compare
every pair of runs with the gate, count false alarms (any blocking decision) and the
stability verdicts. ``--hog-after S --hog-seconds T`` starts two busy-loop processes S
seconds into the last run, for T seconds (what a second job on a 2-core runner does).

    python benchmarks/aa_real_flow.py --runs 4 --out reports/aa-real-flow.json
    python benchmarks/aa_real_flow.py --runs 1 --hog-after 20 --hog-seconds 25 --out reports/hog.json

Run it alone on the machine: anything else on the cores is what it measures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from resnetbench.compare import BLOCKING, compare_results


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def hog(after: float, seconds: float) -> None:
    time.sleep(after)
    procs = [multiprocessing.Process(target=spin, args=(seconds,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def run(matrix: Path, results: Path, hog_after: float | None, hog_seconds: float) -> dict:
    cmd = [sys.executable, "-m", "pytest", "--matrix", str(matrix), "--results", str(results), "-q",
           "-p", "no:cacheprovider", "-m", "size or accuracy or latency"]
    thread = None
    if hog_after is not None:
        thread = threading.Thread(target=hog, args=(hog_after, hog_seconds))
        thread.start()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if thread is not None:
        thread.join()
    print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:], f"({wall:.0f} s)",
          flush=True)
    return json.loads(results.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", default=str(Path(__file__).with_name("aa.yaml")))
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--out", default="reports/aa-real-flow.json")
    ap.add_argument("--hog-after", type=float, default=None)
    ap.add_argument("--hog-seconds", type=float, default=25.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for i in range(args.runs):
        hog_after = args.hog_after if i == args.runs - 1 else None
        runs.append(run(Path(args.matrix), out.with_name(f"{out.stem}-run{i + 1}.json"), hog_after, args.hog_seconds))
    stability = [Counter((c.get("latency") or {}).get("stability", {}).get("verdict", "none") for c in r["cases"])
                 for r in runs]
    for i, counts in enumerate(stability, 1):
        marked = [(c["id"], c["latency"]["stability"]["verdict"], c["latency"]["stability"]["reasons"])
                  for c in runs[i - 1]["cases"]
                  if (c.get("latency") or {}).get("stability", {}).get("verdict") in ("retimed", "unstable")]
        print(f"run {i}: stability {dict(counts)}")
        for case_id, verdict, reasons in marked:
            print(f"  {case_id}: {verdict} {reasons}")
    pairs = []
    for a, b in itertools.combinations(range(len(runs)), 2):
        records = compare_results(runs[a], runs[b])
        alarms = [(r["id"], r["decision"], r["reason"]) for r in records if r["decision"] in BLOCKING]
        pairs.append({"pair": [a + 1, b + 1], "decisions": dict(Counter(r["decision"] for r in records)),
                      "alarms": alarms, "ratios": {r["id"]: r["ratio"] for r in records}})
        print(f"runs {a + 1} vs {b + 1}: {dict(Counter(r['decision'] for r in records))}")
        for alarm in alarms:
            print(f"  ALARM {alarm}")
    n = sum(sum(p["decisions"].values()) for p in pairs)
    alarms = sum(len(p["alarms"]) for p in pairs)
    print(f"A/A: {alarms} blocking decisions in {n} case comparisons over {len(pairs)} pairs of runs")
    out.write_text(json.dumps({"pairs": pairs, "stability": [dict(s) for s in stability]}, indent=1))
    return 0 if not alarms else 1


if __name__ == "__main__":
    sys.exit(main())
