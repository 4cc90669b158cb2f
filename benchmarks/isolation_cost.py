"""What ``--isolate`` costs: the same matrix run serially and isolated, alternating, warm cache.

Reports the wall time of each run, the cost per case ((isolated - serial) / cases, median
over the pairs), and the latency medians of each case in both modes (the watchdog and the
worker must not change what is measured: their ratio should be 1 within the noise).

    python benchmarks/isolation_cost.py --pairs 2 --out reports/isolation-cost.json

Run it alone on the machine: anything else on the cores is what it measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MATRIX = """
matrix:
  arch: [resnet18]
  dtype: [fp32]
  compression: [none]
  backend: [eager, onnxruntime, openvino, torchscript]
  batch: [1]
  include:
    - {arch: resnet18, dtype: bf16, compression: none, backend: eager}
    - {arch: resnet18, dtype: int8, compression: static, backend: onnxruntime}
    - {arch: resnet34, dtype: fp32, compression: none, backend: onnxruntime}
    - {arch: resnet50, dtype: fp32, compression: none, backend: onnxruntime}
input_size: 64
dataset: {name: synthetic, samples: 16}
claims: false
"""


def run(matrix: Path, results: Path, isolate: bool) -> tuple[float, dict[str, float]]:
    cmd = [sys.executable, "-m", "pytest", "--matrix", str(matrix), "--results", str(results), "-q",
           "-p", "no:cacheprovider", *(["--isolate"] if isolate else [])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}")
    data = json.loads(results.read_text())
    return wall, {c["id"]: c["latency"]["median_ms"] for c in data["cases"] if c.get("latency")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--out", default="reports/isolation-cost.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        matrix = Path(tmp) / "m.yaml"
        matrix.write_text(MATRIX)
        results = Path(tmp) / "r.json"
        run(matrix, results, isolate=False)  # fills the cache: what follows is warm
        walls: dict[str, list[float]] = {"serial": [], "isolated": []}
        medians: dict[str, list[dict[str, float]]] = {"serial": [], "isolated": []}
        for i in range(args.pairs):
            order = [False, True] if i % 2 == 0 else [True, False]  # alternate which goes first
            for isolate in order:
                wall, lat = run(matrix, results, isolate)
                mode = "isolated" if isolate else "serial"
                walls[mode].append(wall)
                medians[mode].append(lat)
                print(f"{mode:9} {wall:6.1f} s")
    cases = len(medians["serial"][0])
    per_case = statistics.median((b - a) / cases for a, b in zip(walls["serial"], walls["isolated"], strict=True))
    ratios = {cid: statistics.median(iso[cid] / ser[cid] for ser, iso in zip(medians["serial"], medians["isolated"],
                                                                               strict=True))
              for cid in medians["serial"][0]}
    report = {"cases": cases, "walls": walls, "cost_per_case_s": per_case, "latency_ratio_isolated_over_serial": ratios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{cases} cases: isolation costs {per_case:+.2f} s per case (median of {args.pairs} pairs)")
    for cid, r in ratios.items():
        print(f"  {cid:40} latency isolated/serial {r:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
