"""Suite latency path vs hand-tuned loops per CPU backend, plus the cache's second-run speedup.

Same as ``resnetbench bench-backends`` (see ``resnetbench/tools/benchbackends.py``); takes the
same options, e.g.::

    python benchmarks/bench_backends.py --backends eager onnxruntime --skip-cache-check
"""

from __future__ import annotations

import argparse
import sys

from resnetbench.tools.benchbackends import add_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_backends.py")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench-backends", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
