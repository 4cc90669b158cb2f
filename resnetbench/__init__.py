"""resnetbench: a benchmark and regression-test suite for deploying ResNets.

A YAML matrix of architectures, dtypes, compression methods, backends and batch sizes
expands into pytest cases that check size, accuracy and latency. Run it with
``pytest --matrix matrix.yaml``.
"""

__version__ = "0.1.0"
