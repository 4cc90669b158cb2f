"""A pytest plugin for ``gate-check --real-flow``: every case's calls slowed by ``$RESNETBENCH_SLOW_EVERY_CASE``
(a fraction, e.g. 0.15), LoadGen's streams of the case too, the latency reference never.

Each call waits that fraction of its own duration, as ``gate-check`` and the mutation catalogue
inject it (``tools/gatecheck.py: SlowedRunner, wait_for``). Recipes are chosen before the wrap,
so tuning sees the real runner. Load it with ``-p resnetbench.tools.slow_every_case``; replicas
(``latency.processes``) get the same command line, so they are slowed alike.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "RESNETBENCH_SLOW_EVERY_CASE"


def pytest_configure(config: Any) -> None:
    fraction = float(os.environ.get(ENV, "0") or 0)
    if fraction <= 0:
        return
    from resnetbench import build
    from resnetbench.measure.latency_reference import REFERENCE_ORIGIN
    from resnetbench.tools.slowdown import SlowedRunner, wait_for

    build_case = build.build_case

    def slowed_build(cfg: Any, case: Any, cache: Any, threads: int, **kwargs: Any) -> Any:
        built = build_case(cfg, case, cache, threads, **kwargs)
        if str(cfg.path) != REFERENCE_ORIGIN:
            built.runner = SlowedRunner(built.runner, fraction, wait_for(case.backend))
        return built

    build.build_case = slowed_build  # type: ignore[assignment]

    # LoadGen's system under test loads its own streams of the case (test_scenarios), which
    # build_case never sees; slowed too, so capacity is damaged as latency is. Its reference
    # streams (measure/latency_reference.py) are left alone, as the latency reference is. The
    # wait computes in PyTorch, releasing the GIL, as gate-check --capacity injects it: a
    # Python spin would stall the other streams (capacitycheck.py).
    from resnetbench.measure import scenarios_case
    from resnetbench.tools.slowdown import pool_busy_wait

    load_streams = scenarios_case.load_streams

    def slowed_streams(*args: Any, **kwargs: Any) -> Any:
        return [SlowedRunner(r, fraction, pool_busy_wait) for r in load_streams(*args, **kwargs)]

    scenarios_case.load_streams = slowed_streams  # type: ignore[assignment]
