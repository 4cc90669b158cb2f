"""Did a change keep the suite's behaviour? Compares two results files of the same matrix.

    python benchmarks/same_behaviour.py BEFORE.json[.gz] AFTER.json[.gz]

Same case ids, the same outcome and per-test outcomes, the same artifact bytes and size
formula to the byte, the same accuracy metrics and checks. Timing is not compared: it is the
one thing two runs may not share (the gate judges it). A difference in the chosen run recipe
is printed beside the accuracy figures it can move (another recipe may compute other bits).
Exit status 0 when nothing but timing differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

# OpenVINO's IR names the nodes it makes with a process-wide counter, so model.xml moves by a
# few hundred bytes between processes while model.bin (the weights) stays identical to the byte.
GRAPH_TEXT = (".xml",)
SIZE_KEYS = ("params", "param_bytes", "buffer_bytes", "extra_bytes", "formula_bytes", "artifact_bytes",
             "within_tolerance")


def load(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def recipe(case: dict[str, Any]) -> str | None:
    return ((case.get("artifact") or {}).get("tuning") or {}).get("recipe")


def differences(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences, notes): what changed beyond timing, and what may explain it."""
    diffs: list[str] = []
    notes: list[str] = []
    b_cases = {c["id"]: c for c in before["cases"]}
    a_cases = {c["id"]: c for c in after["cases"]}
    if list(b_cases) != list(a_cases):
        diffs.append(f"case ids differ: only before {sorted(set(b_cases) - set(a_cases))}, "
                     f"only after {sorted(set(a_cases) - set(b_cases))}, or their order")
    for case_id in [c for c in b_cases if c in a_cases]:
        b, a = b_cases[case_id], a_cases[case_id]
        for key in ("outcome", "tests"):
            if b.get(key) != a.get(key):
                diffs.append(f"{case_id}: {key} {b.get(key)} -> {a.get(key)}")
        bs, as_ = b.get("size") or {}, a.get("size") or {}
        files_b, files_a = bs.get("artifact_files") or {}, as_.get("artifact_files") or {}
        moved = {f for f in set(files_b) | set(files_a) if files_b.get(f) != files_a.get(f)}
        for key in SIZE_KEYS:
            if bs.get(key) == as_.get(key):
                continue
            line = f"{case_id}: size.{key} {bs.get(key)} -> {as_.get(key)} (files that moved: {sorted(moved)})"
            if key == "artifact_bytes" and moved and all(f.endswith(GRAPH_TEXT) for f in moved):
                notes.append(line)  # the graph's text, not its weights (see GRAPH_TEXT)
            else:
                diffs.append(line)
        bacc, aacc = b.get("accuracy") or {}, a.get("accuracy") or {}
        changed = [m for m in sorted(set(bacc.get("metrics") or {}) | set(aacc.get("metrics") or {}))
                   if (bacc.get("metrics") or {}).get(m) != (aacc.get("metrics") or {}).get(m)]
        checks = [(c["metric"], c["status"]) for c in bacc.get("checks") or []] != [
            (c["metric"], c["status"]) for c in aacc.get("checks") or []]
        if bacc.get("verdict") != aacc.get("verdict") or checks or changed:
            why = f" (recipe {recipe(b)} -> {recipe(a)})" if recipe(b) != recipe(a) else ""
            line = (f"{case_id}: accuracy verdict {bacc.get('verdict')} -> {aacc.get('verdict')}, "
                    f"{len(changed)} metric(s) changed{why}")
            if why and bacc.get("verdict") == aacc.get("verdict") and not checks:
                notes.append(line)  # the same decisions, other bits from another recipe
            else:
                diffs.append(line)
    return diffs, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = load(args.before), load(args.after)
    diffs, notes = differences(before, after)
    n = len(after["cases"])
    print(f"{n} cases after, {len(before['cases'])} before; schema {before.get('schema_version')} -> "
          f"{after.get('schema_version')}")
    for line in notes:
        print(f"note: {line}")
    for line in diffs:
        print(f"DIFFERENT: {line}")
    print("same behaviour (timing aside)" if not diffs else f"{len(diffs)} difference(s)")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
