"""Keeping timed work alone on the machine.

Under pytest-xdist several workers share the cores. Building artifacts and computing
accuracy may overlap each other, but nothing may run beside a latency timing. One lock
file in the artifact cache arbitrates: work takes it shared, a timing takes it
exclusive (``fcntl.flock``, so the kernel releases it when a worker dies). The lock
keeps *our* workers away; ``ForeignLoad`` measures whether anything else was busy,
so ``ran_alone`` in a latency record is an observation, not a promise.

Never nest the two on one process: a shared hold and an exclusive request on two file
descriptors of the same process would wait on each other.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; timings are then serialised only within one process
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "machine.lock"
# A timing counts as alone when other processes kept less than this many cores busy on average.
ALONE_BELOW_CORES = 0.25


class Hold:
    """A held lock on the machine file; ``exclusive()`` turns a shared hold exclusive for a while."""

    def __init__(self, fd: int | None, mode: int) -> None:
        self.fd = fd
        self.mode = mode

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Time something inside a build: wait until no other worker builds or times, then go back.

        flock converts a lock on the same open file by dropping it and taking the new one,
        so two builders that both ask cannot deadlock: each lets go of its shared hold first.
        """
        if fcntl is None or self.fd is None or self.mode == fcntl.LOCK_EX:
            yield
            return
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, self.mode)


@contextlib.contextmanager
def _flock(directory: Path, mode: int) -> Iterator[Hold]:
    if fcntl is None:
        yield Hold(None, mode)
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "a+b") as fh:
        fcntl.flock(fh.fileno(), mode)
        try:
            yield Hold(fh.fileno(), mode)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def shared(directory: Path) -> contextlib.AbstractContextManager[Hold]:
    """Hold while building or evaluating: any number of workers at once, never beside a timing."""
    return _flock(directory, fcntl.LOCK_SH if fcntl else 0)


def exclusive(directory: Path) -> contextlib.AbstractContextManager[Hold]:
    """Hold while timing: waits until no other worker builds, evaluates or times."""
    return _flock(directory, fcntl.LOCK_EX if fcntl else 0)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, steal) seconds since boot from Linux ``/proc/stat``, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy;
    # steal is the hypervisor running someone else on our core, which is foreign load too
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, steal / tick


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ForeignLoad:
    """Cores other processes kept busy while the ``with`` block ran (``cores``, steal time included),
    and of those the hypervisor's steal (``steal_cores``); None off Linux."""

    def __init__(self) -> None:
        self.cores: float | None = None
        self.steal_cores: float | None = None

    def __enter__(self) -> ForeignLoad:
        self._times, self._own, self._wall = _cpu_times(), _own_cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        times, own, wall = _cpu_times(), _own_cpu_seconds(), time.perf_counter()
        if times is None or self._times is None or wall <= self._wall:
            return
        seconds = wall - self._wall
        # clock ticks are 10 ms: a short window can read slightly negative
        self.cores = round(max(0.0, ((times[0] - self._times[0]) - (own - self._own)) / seconds), 3)
        self.steal_cores = round(max(0.0, (times[1] - self._times[1]) / seconds), 3)

    @property
    def alone(self) -> bool | None:
        return None if self.cores is None else self.cores < ALONE_BELOW_CORES
