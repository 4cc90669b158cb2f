"""What a matrix run is doing, told while it works: one line per phase of a case, in pytest's
terminal (so a CI log shows it too), with the elapsed time and an estimate of the time left.

    [resnetbench 3/40 · 2m10s elapsed · ~11m left] resnet50-fp32-none-onnxruntime-b1: export

The estimate is the expected cost of the cases not yet started (``shard.expected_costs``: the
cost model fitted on a measured run, or measured durations), scaled by how long the cases so
far took against their expected cost. Until a case has finished it says "estimating".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Phase lines for a serial run. ``write``: where a line goes (the terminal reporter's
    ``write_line``); ``costs``: each case id's expected cost, in any unit; ``clock``: a
    monotonic clock (tests pass a fake one)."""

    def __init__(self, write: Callable[[str], None], costs: Mapping[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.costs, self.clock = write, dict(costs), clock
        self.started = clock()
        self.order: list[str] = []  # cases in the order they started
        self.case_started: dict[str, float] = {}
        self.phase_of: dict[str, str] = {}

    def estimate_left(self) -> float | None:
        """Seconds left: expected cost of the cases not finished, at the pace of the finished ones.
        A case counts as finished once the next one has started (the run is serial)."""
        finished = self.order[:-1]
        done_cost = sum(self.costs.get(c, 0.0) for c in finished)
        if not finished or done_cost <= 0:
            return None
        spent = self.case_started[self.order[-1]] - self.started
        current = self.order[-1]
        rest = sum(cost for c, cost in self.costs.items() if c not in self.case_started)
        # the current case: its expected cost less what it has already spent
        pace = spent / done_cost
        current_left = max(self.costs.get(current, 0.0) * pace - (self.clock() - self.case_started[current]), 0.0)
        return rest * pace + current_left

    def phase(self, case_id: str, phase: str) -> None:
        """Say that ``case_id`` starts ``phase``; a repeated phase of the same case is said once."""
        now = self.clock()
        if case_id not in self.case_started:
            self.case_started[case_id] = now
            self.order.append(case_id)
        if self.phase_of.get(case_id) == phase:
            return
        self.phase_of[case_id] = phase
        left = self.estimate_left()
        number = self.order.index(case_id) + 1
        ahead = "estimating" if left is None else f"~{format_duration(left)} left"
        self.write(f"[resnetbench {number}/{len(self.costs)} · {format_duration(now - self.started)} elapsed · "
                   f"{ahead}] {case_id}: {phase}")

    def note(self, text: str) -> None:
        """A line about the run as a whole (the latency processes after the main pass)."""
        self.write(f"[resnetbench · {format_duration(self.clock() - self.started)} elapsed] {text}")
