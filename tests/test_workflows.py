"""Every GitHub Actions workflow of the repository passes actionlint and GitHub's workflow schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / ".github" / "workflows").glob("*.y*ml"))


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "gate.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actionlint(workflow: Path) -> None:
    proc = subprocess.run([_tool("actionlint"), "-no-color", str(workflow)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_github_workflow_schema(workflow: Path) -> None:
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_checks_catch_a_broken_workflow(tmp_path: Path) -> None:
    """Injected damage: an unknown expression context and an action on the removed node20 runtime."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - uses: actions/checkout@v4\n      - run: echo ${{ nosuch.thing }}\n")
    lint = subprocess.run([_tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True)
    assert lint.returncode != 0 and "nosuch" in lint.stdout, lint.stdout
    schema_bad = tmp_path / "schema_bad.yml"
    schema_bad.write_text("on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    schema = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(schema_bad)], capture_output=True, text=True)
    assert schema.returncode != 0, schema.stdout
