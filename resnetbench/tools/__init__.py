"""Measuring tools of the suite, each a ``resnetbench`` subcommand.

- ``gatecheck``: ``resnetbench gate-check``, the regression gate's error rates measured on
  real runs of this machine (and ``summarize_gate_check``, which turns them into rates);
- ``benchbackends``: ``resnetbench bench-backends``, the suite's latency path against
  hand-written loops per CPU backend, and the artifact cache's second-run speedup;
- ``mutations``: ``resnetbench mutations``, the gate's mutation catalogue on real runs
  (also a pytest plugin, ``-p resnetbench.tools.mutations``).

Importing a tool module imports no torch: each one's ``add_parser`` registers its
subcommand on the CLI, and the heavy imports (torch, the backends, pytest-benchmark) are
made inside the functions that run.
"""
