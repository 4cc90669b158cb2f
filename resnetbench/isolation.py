"""Crash isolation: a case that segfaults, aborts, hangs or eats the memory costs only itself.

``pytest --matrix M --isolate`` runs the suite in a pytest-xdist worker (``-n 1`` unless
``-n`` says otherwise). xdist already notices a worker that dies and starts a new one;
this module adds what it lacks:

- **limits**: each worker starts a watchdog process (``python -m resnetbench.isolation``)
  that polls the worker ten times a second. Before every test the worker *arms* it with
  the test's deadline and memory limit (the matrix's ``limits``, else ``DEFAULT_LIMITS``);
  a worker past either is killed with SIGKILL, after the watchdog writes down why. A
  separate process is needed because a hung native call can hold the GIL, which would
  starve a watchdog thread, and a process past its memory cannot be trusted to act.
- **a reason**: the worker's faulthandler writes to a file, so a segfault or abort has a
  name; failing that the worker's exit signal is read from its process.
- **the rest of the case is not rerun**: xdist puts the crashed test back in the queue,
  where it would crash the next worker too; ``CaseScheduling.remove_node`` drops it and
  the crashed case's remaining tests (they share its build) and the controller reports
  them as errors with the reason. Every other case, before and after, runs as usual.

The watchdog costs one small process per worker waking every ``POLL_S``; timings are not
disturbed beyond that (docs/getting-started.md has the measured cost per case).
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from resnetbench.settings import LimitsSettings

POLL_S = 0.05
MEMORY_SHARE = 0.85  # of the machine's memory, where the matrix's limits.memory_gb is unset
_FAULTS = {  # faulthandler's first line -> what the record says
    "Segmentation fault": "segfault (SIGSEGV)",
    "Aborted": "abort (SIGABRT)",
    "Floating-point exception": "floating-point exception (SIGFPE)",
    "Floating point exception": "floating-point exception (SIGFPE)",
    "Bus error": "bus error (SIGBUS)",
    "Illegal instruction": "illegal instruction (SIGILL)",
}


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def limits_for(limits: LimitsSettings) -> tuple[float, int]:
    """(timeout seconds, memory bytes) of one test from the matrix's ``limits``."""
    memory = int(limits.memory_gb * 1e9) if limits.memory_gb else int(MEMORY_SHARE * machine_memory_bytes())
    return float(limits.timeout_s), memory


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)  # the watchdog never reads half a file


class WorkerGuard:
    """A worker's side: faulthandler to a file, the watchdog process, arming per test."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        self.arm_file = directory / f"{worker_id}.arm.json"
        self.verdict_file = directory / f"{worker_id}.verdict.json"
        self._fault: IO[str] = open(directory / f"{worker_id}.fault", "w", encoding="utf-8")  # noqa: SIM115
        faulthandler.enable(file=self._fault, all_threads=True)
        _write_json(self.arm_file, {"nodeid": None})
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "resnetbench.isolation", str(os.getpid()), str(self.arm_file), str(self.verdict_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def arm(self, nodeid: str, timeout_s: float, memory_bytes: int) -> None:
        _write_json(self.arm_file, {"nodeid": nodeid, "deadline": time.time() + timeout_s, "timeout_s": timeout_s,
                                    "memory_bytes": memory_bytes})

    def disarm(self) -> None:
        _write_json(self.arm_file, {"nodeid": None})

    def close(self) -> None:
        self._watchdog.terminate()
        self._watchdog.wait()
        faulthandler.enable(file=sys.__stderr__ or sys.stderr)
        self._fault.close()


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def watch(pid: int, arm_file: Path, verdict_file: Path) -> None:
    """The watchdog: kill ``pid`` when its armed test passes its deadline or memory limit."""
    armed: dict[str, Any] = {}
    seen: int | None = None
    while os.getppid() == pid:  # the worker died (or exited): nothing left to guard
        try:
            stamp = arm_file.stat().st_mtime_ns
            if stamp != seen:
                armed, seen = json.loads(arm_file.read_text(encoding="utf-8")), stamp
        except (OSError, ValueError):
            pass
        if armed.get("nodeid"):
            verdict = None
            rss = _rss_bytes(pid)
            if time.time() > armed["deadline"]:
                verdict = {"kind": "timeout",
                           "reason": f"timeout: still running after {armed['timeout_s']:g} s (limits.timeout_s)"}
            elif rss > armed["memory_bytes"]:
                verdict = {"kind": "memory",
                           "reason": f"out of memory: resident {rss / 1e9:.2f} GB passed the limit of "
                                     f"{armed['memory_bytes'] / 1e9:.2f} GB (limits.memory_gb)"}
            if verdict is not None:
                _write_json(verdict_file, {"nodeid": armed["nodeid"], **verdict})
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(POLL_S)


def crash_reason(directory: Path, worker_id: str, returncode: int | None) -> dict[str, str]:
    """Why worker ``worker_id`` died: {"kind": signal/timeout/memory/died, "reason": text}.

    Reads (and removes, so a replacement worker starts clean) what the watchdog and the
    faulthandler wrote; ``returncode`` is the worker process's, when known.
    """
    verdict_file = directory / f"{worker_id}.verdict.json"
    fault_file = directory / f"{worker_id}.fault"
    try:
        verdict = json.loads(verdict_file.read_text(encoding="utf-8"))
        return {"kind": verdict["kind"], "reason": verdict["reason"]}
    except (OSError, ValueError, KeyError):
        pass
    finally:
        verdict_file.unlink(missing_ok=True)
    try:
        fault = fault_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        fault = ""
    for line in fault.splitlines():
        if line.startswith("Fatal Python error: "):
            what = line.removeprefix("Fatal Python error: ").strip()
            return {"kind": "signal", "reason": _FAULTS.get(what, what)}
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (from outside: e.g. the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
        return {"kind": "signal", "reason": f"killed by {name}{hint}"}
    if returncode is not None:
        return {"kind": "died", "reason": f"the worker exited with status {returncode} in the middle of the test"}
    return {"kind": "died", "reason": "the worker died without a fault report (no signal recorded)"}


def worker_returncode(node: Any, wait_s: float = 2.0) -> int | None:
    """The exit status of an xdist worker's process (negative: the signal), if execnet shows it."""
    popen = getattr(getattr(getattr(node, "gateway", None), "_io", None), "popen", None)
    if popen is None:
        return None
    deadline = time.monotonic() + wait_s
    while popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return popen.returncode  # type: ignore[no-any-return]


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
