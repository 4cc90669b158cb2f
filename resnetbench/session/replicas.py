"""Latency replicas (``latency.processes``): the run's latency cases re-timed in fresh processes.

A case's case/reference ratio moves between processes more than within one, so the gate
pools the paired timings of several processes (``stats.decide_processes``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from resnetbench import results as results_io
from resnetbench.session.state import RunState


def replicate_latency(state: RunState, args: Sequence[str], cwd: Path) -> None:
    """Re-time this run's latency cases in ``latency.processes - 1`` fresh processes, one after another.

    Each is this run's own command line with ``-m latency``, a ``-k`` that names exactly the
    cases timed here, no report, summary or baseline, and the same artifact cache: it builds
    and tunes nothing (the cache has it all), and runs only the latency phase. Its paired
    timings and stability go into the case's ``latency.replicas``; ``latency.processes``
    counts the processes with paired timings. A replica that fails to start or to write
    results is recorded as such, and the gate then has fewer processes for the case.
    """
    wanted = state.config.latency.processes
    timed = {case_id: rec for case_id, rec in state.records.items()
             if rec.latency is not None and rec.latency.paired}
    for rec in timed.values():
        assert rec.latency is not None
        rec.latency.processes = 1
    if wanted <= 1 or not timed:
        return
    select = " or ".join(f"[{case_id}]" for case_id in timed)
    with tempfile.TemporaryDirectory(prefix="resnetbench-replica-") as tmp:
        for i in range(1, wanted):
            if state.progress is not None:
                if i == 1:
                    state.progress.write("")  # off the line of pytest's dots and percentage
                state.progress.note(f"latency process {i + 1}/{wanted}: re-timing {len(timed)} case(s) in a fresh "
                                    f"process (latency.processes)")
            out = Path(tmp) / f"replica{i}.json"
            cmd = [sys.executable, "-m", "pytest", *list(args), "-m", "latency", "-k", select, "--results", str(out),
                   "--report", "", "--summary", "", "--baseline", "", "--latency-replica", "-q",
                   "-p", "no:cacheprovider", "--cache-dir", str(state.cache.root)]
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                                  check=False)
            try:
                cases = {c["id"]: c for c in results_io.load(out)["cases"]}
            except results_io.ResultsError as exc:
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
                for rec in timed.values():
                    rec.note(f"latency replica {i} wrote no results ({exc}; exit {proc.returncode}: "
                             f"{' / '.join(tail)})")
                continue
            for case_id, rec in timed.items():
                lat = (cases.get(case_id) or {}).get("latency") or {}
                replica = {"paired": lat.get("paired"), "stability": lat.get("stability"),
                           "median_ms": lat.get("median_ms"), "outcome": (cases.get(case_id) or {}).get("outcome")}
                assert rec.latency is not None
                rec.latency.replicas = [*(rec.latency.replicas or []), replica]
                if lat.get("paired"):
                    rec.latency.processes = (rec.latency.processes or 1) + 1
                else:
                    rec.note(f"latency replica {i} has no paired timings for this case "
                             f"({replica['outcome'] or 'absent'})")
