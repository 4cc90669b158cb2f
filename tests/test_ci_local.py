"""``resnetbench ci-local``: the workflow's gate rehearsed on two git revisions of a small project."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from resnetbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
CASE = "resnet18-fp32-none-onnxruntime-b1"
MATRIX = """
matrix:
  arch: [resnet18]
  backend: [eager, onnxruntime]
input_size: 64
dataset: {name: synthetic, samples: 8}
latency: {warmup: 3, rounds: 20, pairs: 40, blocks: 8}
claims: false
"""
# The pull request's change: one case's runner does 20% more work per call (the gate-check
# and mutation catalogue's injection, SlowedRunner); the latency reference is left alone.
SLOWDOWN = f'''
from resnetbench import build
from resnetbench.measure.latency_reference import REFERENCE_ORIGIN
from resnetbench.tools.slowdown import SlowedRunner, wait_for

original = build.build_case


def build_slowed_case(config, case, cache, threads, **kwargs):
    built = original(config, case, cache, threads, **kwargs)
    if case.id == "{CASE}" and str(config.path) != REFERENCE_ORIGIN:
        built.runner = SlowedRunner(built.runner, 0.20, wait_for(case.backend))
    return built


build.build_case = build_slowed_case
'''


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, str, str]:
    """A git repository of this project with the small matrix: a base commit and a slower head."""
    repo = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "resnetbench", repo / "resnetbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / "m.yaml").write_text(MATRIX)
    (repo / "tests").mkdir()  # pyproject's testpaths
    (repo / "tests" / "README").write_text("the project's tests are not part of this rehearsal\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "conftest.py").write_text(SLOWDOWN)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a slower onnxruntime case")
    return repo, base, _git(repo, "rev-parse", "HEAD")


def _undecided_on_a_busy_machine(out: Path) -> str | None:
    """Why the gate could not decide, when the timings themselves measured other load.

    The gate fails closed on timings it cannot trust (unstable, inconclusive): on this
    shared 2-core VM that happens when the host steals the CPU. Only then, and only with
    the foreign load measured in the results, may a rehearsal end red without a verdict.
    """
    import json

    blocking = [line for line in (out / "gate.txt").read_text().splitlines()
                if line.split()[1:2] in (["unstable"], ["inconclusive"])]
    cases = [c for side in ("base.json", "head.json") for c in json.loads((out / side).read_text())["cases"]]
    busy = [c["latency"]["foreign_load_cores"] for c in cases
            if c.get("latency") and c["latency"].get("ran_alone") is False]
    return f"{len(blocking)} undecided, foreign load {max(busy)} cores" if blocking and busy else None


def _rehearse(project, base: str, head: str, out: Path, shared_cache: Path, monkeypatch) -> int:
    monkeypatch.setenv("RESNETBENCH_CACHE", str(shared_cache))
    return main(["ci-local", "--repo", str(project[0]), "--base", base, "--head", head, "--matrix", "m.yaml",
                 "--shards", "2", "-o", str(out)])


@pytest.mark.timing
@pytest.mark.slow
def test_a_pull_request_that_slows_one_case_by_20_percent_ends_red_naming_it(
        project, tmp_path, shared_cache, monkeypatch, capsys):
    code = _rehearse(project, project[1], project[2], tmp_path, shared_cache, monkeypatch)
    out = capsys.readouterr().out
    assert code == 1, out[-4000:]
    gate = (tmp_path / "gate.txt").read_text()
    regressed = [line for line in gate.splitlines() if line.split()[1:2] == ["regressed"]]
    if not regressed and (busy := _undecided_on_a_busy_machine(tmp_path)):
        pytest.skip(f"the machine was not quiet enough to time: {busy}")
    assert len(regressed) == 1 and regressed[0].startswith(CASE), gate
    assert "gate FAILED" in gate
    assert "ci-local: RED" in out
    # the same artifacts as the workflow's gate job: both merged sides, the report and the summary
    for name in ("base.json", "head.json", "report.html", "summary.md"):
        assert (tmp_path / name).is_file(), name
    assert CASE in (tmp_path / "summary.md").read_text()


@pytest.mark.timing
@pytest.mark.slow
def test_two_identical_revisions_end_green(project, tmp_path, shared_cache, monkeypatch, capsys):
    code = _rehearse(project, project[1], project[1], tmp_path, shared_cache, monkeypatch)
    out = capsys.readouterr().out
    gate = (tmp_path / "gate.txt").read_text()
    # never a regression, failure or missing case; undecided only where other load was measured
    assert not any(line.split()[1:2] in (["regressed"], ["failed"], ["missing"]) for line in gate.splitlines()), gate
    if code == 1 and (busy := _undecided_on_a_busy_machine(tmp_path)):
        pytest.skip(f"the machine was not quiet enough to time: {busy}")
    assert code == 0, out[-4000:]
    assert "ci-local: GREEN" in out
    shards = sorted(p.name for p in (tmp_path / "shards").glob("*/*.json"))
    assert shards == ["base-1.json", "base-2.json", "head-1.json", "head-2.json"]


def test_an_unknown_revision_or_matrix_is_a_clear_error(project, tmp_path, capsys):
    repo, base, head = project
    assert main(["ci-local", "--repo", str(repo), "--base", "nosuch", "-o", str(tmp_path)]) == 2
    assert "'nosuch' is not a commit" in capsys.readouterr().err
    assert main(["ci-local", "--repo", str(repo), "--base", base, "--matrix", "none.yaml", "-o", str(tmp_path)]) == 2
    assert "none.yaml is not a file in the head revision" in capsys.readouterr().err
    assert main(["ci-local", "--repo", str(tmp_path), "-o", str(tmp_path)]) == 2
