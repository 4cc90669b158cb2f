"""``resnetbench`` command line: validate, schema, sizes, claims, report, compare, decide, merge, cache, train."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from resnetbench.config import TRAIN_DEFAULTS

CACHE_DIR_HELP = "artifact cache (default: $RESNETBENCH_CACHE or .resnetbench-cache)"

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


def _err(msg: str) -> int:
    print(f"resnetbench: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_validate(args: argparse.Namespace) -> int:
    from resnetbench.config import ConfigError, load_config
    from resnetbench.matrix import expand

    try:
        cases = expand(load_config(args.matrix))
    except ConfigError as exc:
        return _err(str(exc))
    print(f"{args.matrix}: valid, {len(cases)} cases")
    if args.list:
        for case in cases:
            print(f"  {case.id}")
    return EXIT_OK


def cmd_shard(args: argparse.Namespace) -> int:
    from resnetbench import results as results_io
    from resnetbench.config import ConfigError, load_config
    from resnetbench.matrix import expand
    from resnetbench.shard import claims_cost, durations_from, expected_costs, loads, parse_shard, shard_cases

    try:
        cfg = load_config(args.matrix)
        cases = expand(cfg)
        k, n = parse_shard(args.shard)
        durations = durations_from(results_io.load(args.durations_path)) if args.durations_path else None
    except (ConfigError, ValueError) as exc:
        return _err(str(exc))
    chosen = shard_cases(cases, k, n, cfg.input_size, durations, claims=cfg.claims)
    if args.format == "k":
        # a -k expression that selects exactly these cases ("[id]" cannot match a longer id)
        print(" or ".join(f"[{c.id}]" for c in chosen) or "[no-case-selected]")
    elif args.format == "loads":
        costs = expected_costs(cases, cfg.input_size, durations)
        totals = loads(costs, n, claims_cost(cases, cfg.input_size, durations) if cfg.claims else 0.0)
        mean = sum(totals) / n
        for i, total in enumerate(totals, start=1):
            print(f"{i}/{n}: {total:8.1f}  ({total / mean:.2f}x the mean)")
    else:
        print("\n".join(c.id for c in chosen))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    if args.results:
        from resnetbench.results import results_schema

        print(json.dumps(results_schema(), indent=2))
        return EXIT_OK
    from resnetbench.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_sizes(args: argparse.Namespace) -> int:
    from resnetbench.formulas import sizes_table

    print(f"{'arch':<10} {'dtype':<5} {'params':>12} {'bytes':>13} {'MB':>9} {'MiB':>9}")
    for row in sizes_table():
        print(f"{row['arch']:<10} {row['dtype']:<5} {row['params']:>12,} {row['bytes']:>13,} {row['mb']:>9.2f} {row['mib']:>9.2f}")
    print("MB = 10^6 bytes (the guide's unit), MiB = 2^20 bytes; BatchNorm running statistics not included.")
    return EXIT_OK


def cmd_recipes(args: argparse.Namespace) -> int:
    """Each backend's recipes per dtype (uncompressed, batch 1): the names ``tuning.recipes`` pins."""
    from resnetbench.backends import BACKENDS
    from resnetbench.config import DTYPES
    from resnetbench.matrix import Case
    from resnetbench.registry import RegistryError

    for name in args.backends or BACKENDS.names():
        try:
            backend = BACKENDS.get(name)
        except RegistryError as exc:
            return _err(str(exc))
        for dtype in sorted(backend.dtypes, key=DTYPES.index):
            compression = "static" if dtype == "int8" else "none"
            for i, recipe in enumerate(backend.recipes(Case("resnet50", dtype, compression, name, 1))):
                default = " (default)" if i == 0 else ""
                print(f"{name:<14} {dtype:<5} {recipe.name:<24} {recipe.summary}{default}")
    return EXIT_OK


def cmd_claims(args: argparse.Namespace) -> int:
    from resnetbench.cache import ArtifactCache, default_cache_dir
    from resnetbench.claims import CLAIMS, check_all

    unknown = [c for c in args.only or [] if c not in CLAIMS]
    if unknown:
        return _err(f"unknown claim(s) {', '.join(unknown)}; known: {', '.join(CLAIMS)}")
    results = check_all(ArtifactCache(Path(args.cache_dir or default_cache_dir())), args.only)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1, default=str))
        return EXIT_OK
    for r in results:
        flag = "" if r.verdict == r.expected_verdict else f"  (UNEXPECTED: project expects {r.expected_verdict})"
        print(f"{r.id}  {r.verdict.upper():<8} {r.claim}{flag}")
        print(f"      stated:   {r.stated}")
        print(f"      measured: {r.measured}")
    return EXIT_OK if all(r.verdict == r.expected_verdict for r in results) else EXIT_REGRESSION


def cmd_report(args: argparse.Namespace) -> int:
    from resnetbench import results as results_io
    from resnetbench.report import render_markdown, write_html

    # Bad input or an unusable output path is refused before anything is written: the report
    # is written atomically after its inputs loaded, the summary only once it is rendered.
    try:
        results_io.check_output(args.output, "-o")
        if args.summary:
            results_io.check_output(args.summary, "--summary")
        write_html(args.results, args.output, args.baseline)
    except results_io.ResultsError as exc:
        return _err(str(exc))
    except OSError as exc:  # what check_output cannot see (a read-only file system); the old file stays
        return _err(f"-o {args.output}: cannot write: {exc.strerror or exc}")
    if args.summary:
        try:
            summary = render_markdown(results_io.merge(args.results))
            Path(args.summary).write_text(summary, encoding="utf-8")
        except results_io.ResultsError as exc:
            return _err(str(exc))
        except OSError as exc:
            return _err(f"--summary {args.summary}: cannot write: {exc.strerror or exc}")
    print(f"wrote {args.output}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from resnetbench.compare import main_compare

    return main_compare(args.baseline, args.current, args.threshold, args.strict, allow=args.allow)


def cmd_decide(args: argparse.Namespace) -> int:
    from resnetbench import results as results_io
    from resnetbench.decide import Scenario, ScenarioError, decide, format_decision
    from resnetbench.recommendations import format_recommendations, judge_all

    try:
        scenario = Scenario.load(args.scenario)
        results = results_io.merge(args.results)
        decision = decide(results, scenario)
    except (results_io.ResultsError, ScenarioError) as exc:
        return _err(str(exc))
    print(format_decision(decision))
    recommendations = judge_all(results)
    print("\nThe guide's recommendations on these results:\n" + format_recommendations(recommendations))
    if args.json:
        out = {**decision.to_dict(), "recommendations": recommendations}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    # no pick (nothing satisfies, or nothing could be decided) is not a decision
    return EXIT_OK if decision.pick is not None else EXIT_REGRESSION


def cmd_merge(args: argparse.Namespace) -> int:
    from resnetbench import results as results_io

    try:
        results_io.check_output(args.output, "-o")
        merged = results_io.merge(args.results, allow_mixed=args.allow_mixed)
    except results_io.ResultsError as exc:
        return _err(str(exc))
    try:
        results_io.write_atomic(args.output, merged)  # the old file stays if this fails
    except OSError as exc:
        return _err(f"-o {args.output}: cannot write: {exc.strerror or exc}")
    print(f"wrote {args.output}: {len(merged['cases'])} cases from {len(args.results)} files")
    found = merged["merge"]
    problems = [f"{what}: {', '.join(found[key])}" for key, what in (
        ("duplicates", "case ids in more than one file (the last kept)"),
        ("missing_cases", "cases of the matrix no file holds"),
        ("missing_shards", "shards no file came from")) if found[key]]
    if found["mixed_shard_counts"]:
        problems.append("files from splits into different numbers of shards")
    for problem in problems:
        print(f"resnetbench merge: {problem}", file=sys.stderr)
    # Fail closed: an incomplete or overlapping merge is written (to be looked at) but is not a pass.
    return EXIT_REGRESSION if problems else EXIT_OK


def cmd_cache(args: argparse.Namespace) -> int:
    from resnetbench.cache import ArtifactCache, default_cache_dir

    cache = ArtifactCache(Path(args.cache_dir or default_cache_dir()))
    if args.action == "clear":
        freed = cache.clear()
        print(f"cleared {cache.root} ({freed / 1e6:.1f} MB)")
    else:
        print(f"{cache.root}: {cache.size_bytes() / 1e6:.1f} MB")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from resnetbench.environment import default_threads, set_threads
    from resnetbench.train import train_digits

    set_threads(args.threads or default_threads())
    model, info = train_digits(args.arch, epochs=args.epochs, seed=args.seed)
    import torch

    torch.save(model.state_dict(), args.output)
    print(f"{args.arch} on digits: test top-1 {info['test_top1']:.1%} after {args.epochs} epochs in {info['train_s']:.1f} s -> {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnetbench", description="Benchmark and regression-test ResNet deployments.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a matrix file; exit 2 with a clear message when it is wrong")
    p.add_argument("matrix", help="the matrix file")
    p.add_argument("--list", action="store_true", help="also list the case ids")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of matrix files (for editors)")
    p.add_argument("--results", action="store_true",
                   help="print the JSON Schema of results files instead (what report, compare and merge read)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("sizes", help="formula sizes of every architecture x dtype, in MB and MiB")
    p.set_defaults(func=cmd_sizes)

    p = sub.add_parser("recipes", help="each backend's run recipes per dtype (what tuning times; tuning.recipes pins)")
    p.add_argument("backends", nargs="*", metavar="BACKEND", help="only these backends (default: all)")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("claims", help="check the guide's claims against measurements")
    p.add_argument("--only", nargs="*", metavar="CN", help="only these claims, e.g. C3 C4")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("report", help="render the HTML comparison report from results files")
    p.add_argument("results", nargs="+", help="results files (several: the shards of one run)")
    p.add_argument("-o", "--output", default="reports/report.html", help="the HTML file to write")
    p.add_argument("--baseline", default=None, help="results file to compare against")
    p.add_argument("--summary", default=None, help="also write a Markdown summary here")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="fail-closed regression gate: exit 0 ok, 1 regressed/failed/missing/undecided, 2 bad input")
    p.add_argument("baseline", help="the base run's results file")
    p.add_argument("current", help="the head run's results file")
    p.add_argument("--threshold", type=float, default=None, help="relative slowdown that counts (default 0.10)")
    p.add_argument("--strict", action="store_true", help="refuse to compare runs from different machines")
    p.add_argument("--allow", action="append", default=[], metavar="PATTERN=REASON",
                   help="let a blocking case (id glob) pass, with the reason printed; repeatable")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("decide", help="which configuration to ship under a scenario's constraints and objective "
                                      "(exit 0: a pick, 1: none satisfies or none could be decided, 2: bad input)")
    p.add_argument("results", nargs="+", help="results file(s) of one run (shards are merged)")
    p.add_argument("--scenario", default="edge", help="edge, cloud, or a YAML file with constraints: and "
                                                      "objective: (default %(default)s)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the decision as JSON here")
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser("merge", help="merge shard results into one file (exit 1: duplicate or missing cases)")
    p.add_argument("results", nargs="+", help="the shards' results files")
    p.add_argument("-o", "--output", required=True, help="the merged results file to write")
    p.add_argument("--allow-mixed", action="store_true",
                   help="merge files from different machines or library versions (refused by default)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("shard", help="the case ids of one shard (what --shard K/N runs), or every shard's expected load")
    p.add_argument("matrix", help="the matrix file")
    p.add_argument("--shard", required=True, metavar="K/N", help="shard K of N (1-based)")
    p.add_argument("--durations-path", metavar="FILE", default=None, help="balance on this results file's durations")
    p.add_argument("--format", choices=["ids", "k", "loads"], default="ids",
                   help="ids (one per line), k (a pytest -k expression), loads (expected cost per shard)")
    p.set_defaults(func=cmd_shard)

    p = sub.add_parser("cache", help="show or clear the artifact cache")
    p.add_argument("action", choices=["info", "clear"], help="show its entries and size, or empty it")
    p.add_argument("--cache-dir", default=None, help=CACHE_DIR_HELP)
    p.set_defaults(func=cmd_cache)

    # The measuring tools: importing them imports no torch (only running them does).
    from resnetbench.tools import benchbackends, cilocal, gatecheck, gpucheck, mutations

    cilocal.add_parser(sub)
    gatecheck.add_parser(sub)
    benchbackends.add_parser(sub)
    mutations.add_parser(sub)
    gpucheck.add_parser(sub)

    p = sub.add_parser("train", help="train weights on the offline digits dataset")
    p.add_argument("--arch", default="resnet18", help="architecture to train")
    p.add_argument("--dataset", choices=["digits"], default="digits", help="scikit-learn's bundled 8x8 digits")
    p.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"], help="training epochs (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batches")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("-o", "--output", default="digits-weights.pt", help="the checkpoint to write (a state dict)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `resnetbench validate m.yaml --list | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
