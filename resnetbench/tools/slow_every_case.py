"""A pytest plugin for ``gate-check --real-flow``: every case's calls slowed by ``$RESNETBENCH_SLOW_EVERY_CASE``
(a fraction, e.g. 0.15), the latency reference never.

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
