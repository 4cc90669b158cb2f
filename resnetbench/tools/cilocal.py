"""``resnetbench ci-local``: the pull-request gate of ``.github/workflows/gate.yml``, rehearsed on one machine.

The workflow cannot run here, so its logic is run instead, step for step: for each of
N shards, head's ``resnetbench shard --format k`` names the slice, the base revision
runs that slice (``-k``) and the head revision runs ``--shard K/N``; then head's
``resnetbench merge --allow-mixed`` joins each side, ``resnetbench compare`` gates
(fail closed) and ``resnetbench report`` renders the HTML report and the Markdown
summary. Each revision is unpacked with ``git archive`` and runs with its own code first
on ``PYTHONPATH``, as each side's ``pip install -e`` does on the runner; both share this
environment's libraries and the artifact cache.

Exit 0: merge and gate passed. 1: a step failed, the gate blocked, or a side wrote no
results. 2: bad input (not a git repository, unknown revision, no such matrix).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RED, EXIT_USAGE = 0, 1, 2
SELECT = "size or accuracy or latency"  # the workflow's -m: the claims are not gated
DURATIONS = "resnetbench/default_durations.json"


class RehearsalError(Exception):
    """Bad input: the message names it."""


def _git(repo: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if proc.returncode:
        raise RehearsalError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def resolve(repo: Path, rev: str) -> str:
    """The commit a revision names (``main``, ``HEAD~1``, a sha)."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except RehearsalError:
        raise RehearsalError(f"--base/--head: {rev!r} is not a commit of {repo}") from None


def unpack(repo: Path, commit: str, into: Path) -> Path:
    """The revision's tracked files under ``into`` (what ``actions/checkout`` gives a runner)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(_git(repo, "archive", "--format=tar", commit))) as tar:
        tar.extractall(into, filter="data")
    return into


class Rehearsal:
    """Runs the workflow's steps and remembers each one's exit code, like the Actions log."""

    def __init__(self, out: Path, head_dir: Path, verbose: bool) -> None:
        self.out, self.head_dir, self.verbose = out, head_dir, verbose
        self.steps: list[tuple[str, int]] = []

    def run(self, name: str, cmd: list[str], cwd: Path, code: Path, capture: Path | None = None) -> int:
        """One step: ``cmd`` in ``cwd`` with revision ``code`` first on the import path."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))}
        print(f"--- {name}: {shlex.join(cmd)}", flush=True)
        proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
        text = proc.stdout + proc.stderr
        if capture is not None:
            capture.write_text(proc.stdout, encoding="utf-8")
        if self.verbose or proc.returncode:
            print(text.rstrip()[-4000:], flush=True)
        self.steps.append((name, proc.returncode))
        return proc.returncode

    def cli(self, name: str, *args: str, capture: Path | None = None) -> int:
        """A ``resnetbench`` command of the head revision (the workflow's gate job installs head)."""
        return self.run(name, [sys.executable, "-m", "resnetbench.cli", *args], self.out, self.head_dir, capture)


def rehearse(repo: Path, base: str, head: str, matrix: str, shards: int, out: Path,
             pytest_args: list[str], verbose: bool = False) -> int:
    base_commit, head_commit = resolve(repo, base), resolve(repo, head)
    out = out.resolve()
    for stale in ("src", "shards"):  # a previous rehearsal's files must not be merged into this one
        shutil.rmtree(out / stale, ignore_errors=True)
    for stale in ("base.json", "head.json", "gate.txt", "report.html", "summary.md"):
        (out / stale).unlink(missing_ok=True)
    sides = {"base": unpack(repo, base_commit, out / "src" / "base"),
             "head": unpack(repo, head_commit, out / "src" / "head")}
    if not (sides["head"] / matrix).is_file():
        raise RehearsalError(f"--matrix: {matrix} is not a file in the head revision {head_commit[:12]}")
    print(f"ci-local: base {base} ({base_commit[:12]}), head {head} ({head_commit[:12]}), {shards} shards, {matrix}")
    steps = Rehearsal(out, sides["head"], verbose)
    durations = ["--durations-path", DURATIONS] if (sides["head"] / DURATIONS).is_file() else []
    pytest = [sys.executable, "-m", "pytest", "--matrix", matrix, "-m", SELECT, "-p", "no:cacheprovider", *pytest_args]
    for k in range(1, shards + 1):
        shard_dir = out / "shards" / str(k)
        shard_dir.mkdir(parents=True, exist_ok=True)
        slice_k = shard_dir / "slice.k"
        shard = f"{k}/{shards}"
        if steps.run(f"shard {shard}: head's slice", [sys.executable, "-m", "resnetbench.cli", "shard", matrix,
                     "--shard", shard, *durations, "--format", "k"], sides["head"], sides["head"], capture=slice_k):
            continue
        # both sides run with continue-on-error in the workflow: the merge and the gate judge their results
        steps.run(f"shard {shard}: base side", [*pytest, "-k", slice_k.read_text().strip(),
                  "--results", str(shard_dir / f"base-{k}.json")], sides["base"], sides["base"])
        steps.run(f"shard {shard}: head side", [*pytest, "--shard", shard, *durations,
                  "--results", str(shard_dir / f"head-{k}.json")], sides["head"], sides["head"])
    merged = {}
    for side in ("base", "head"):
        files = sorted(str(p) for p in (out / "shards").glob(f"*/{side}-*.json"))
        if len(files) != shards:
            print(f"ci-local: {side}: {len(files)} of {shards} shards wrote results")
            steps.steps.append((f"merge {side}", EXIT_RED))
            continue
        merged[side] = steps.cli(f"merge {side}", "merge", "--allow-mixed", *files, "-o", str(out / f"{side}.json"))
    gate = EXIT_RED
    if (out / "base.json").is_file() and (out / "head.json").is_file():
        gate = steps.cli("gate", "compare", str(out / "base.json"), str(out / "head.json"), capture=out / "gate.txt")
        print((out / "gate.txt").read_text(encoding="utf-8").rstrip())
    if (out / "head.json").is_file():
        baseline = ["--baseline", str(out / "base.json")] if (out / "base.json").is_file() else []
        steps.cli("report and summary", "report", str(out / "head.json"), *baseline,
                  "-o", str(out / "report.html"), "--summary", str(out / "summary.md"))
    green = gate == EXIT_OK and len(merged) == 2 and all(code == EXIT_OK for code in merged.values())
    print(f"ci-local: {'GREEN' if green else 'RED'} "
          f"(merge: {', '.join(f'{s} exit {c}' for s, c in merged.items()) or 'not run'}; gate: exit {gate}); "
          f"report {out / 'report.html'}, summary {out / 'summary.md'}")
    return EXIT_OK if green else EXIT_RED


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``ci-local`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "ci-local",
        help="rehearse the pull-request gate (shards, base and head, merge, gate, report) on this machine",
        description="Run gate.yml's steps locally on two git revisions: exit 0 green, 1 red, 2 bad input.",
    )
    p.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    p.add_argument("--base", default="main", help="the baseline revision (default: main; the workflow uses "
                   "the merge base of the pull request)")
    p.add_argument("--head", default="HEAD", help="the revision under test (default: HEAD; commit first)")
    p.add_argument("--matrix", default="matrix.yaml", help="matrix file, relative to the repository root")
    p.add_argument("--shards", type=int, default=3, help="number of shards, as in the workflow (default 3)")
    p.add_argument("-o", "--out", default="reports/ci-local", help="working and output directory")
    p.add_argument("--pytest-args", default="", help="extra arguments for both sides' pytest, one string")
    p.add_argument("-v", "--verbose", action="store_true", help="print every step's output, not only failures'")
    p.set_defaults(func=cmd_ci_local)
    return p


def cmd_ci_local(args: argparse.Namespace) -> int:
    if args.shards < 1:
        print(f"resnetbench ci-local: --shards must be at least 1, got {args.shards}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return rehearse(Path(args.repo).resolve(), args.base, args.head, args.matrix, args.shards, Path(args.out),
                        shlex.split(args.pytest_args), args.verbose)
    except RehearsalError as exc:
        print(f"resnetbench ci-local: {exc}", file=sys.stderr)
        return EXIT_USAGE
