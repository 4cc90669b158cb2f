"""The security review, as tests over the source: each rule is checked on every module.

- YAML is read with the safe loader only; torch files with ``weights_only=True`` only;
  no pickle, no ``eval``/``exec``, no ``shell=True``; no network client.
- The report's Jinja environment autoescapes.
- Names that become file names (case ids, extension names) cannot leave their directory.
- Workflows never use ``pull_request_target`` and declare least-privilege ``permissions``.

Each rule's finder is also run on a snippet that breaks it, so a rule that finds nothing
because it cannot find anything fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from resnetbench.config import ConfigError, load_config

PACKAGE = Path(__file__).resolve().parents[1] / "resnetbench"
WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
NETWORK_MODULES = {"urllib.request", "requests", "http.client", "httpx", "socket", "ftplib", "aiohttp"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def violations(source: str, where: str = "<src>") -> list[str]:
    """Every breach of the rules in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in ("eval", "exec", "__import__"):
                found.append(f"{line}: {name}()")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                found.append(f"{line}: {name} (use yaml.safe_load or a SafeLoader)")
            if name.startswith(("pickle.", "cPickle.", "dill.", "marshal.")) and name.rsplit(".", 1)[-1] in (
                    "load", "loads", "Unpickler"):
                found.append(f"{line}: {name} unpickles")
            if name == "torch.load":
                weights_only = _kw(node, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    found.append(f"{line}: torch.load without weights_only=True")
            shell = _kw(node, "shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                found.append(f"{line}: shell=True")
            if name.endswith("Environment") and "jinja" in source:
                autoescape = _kw(node, "autoescape")
                if not (isinstance(autoescape, ast.Constant) and autoescape.value is True):
                    found.append(f"{line}: Jinja Environment without autoescape=True")
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{line}: imports {n} (no network at run time)" for n in names
                      if n in NETWORK_MODULES or n.split(".")[0] in ("requests", "httpx", "aiohttp")]
    return found


@pytest.mark.parametrize("snippet", [
    "eval('1')", "exec('x = 1')", "import yaml\nyaml.load(s)", "import pickle\npickle.loads(b)",
    "import torch\ntorch.load(p)", "import torch\ntorch.load(p, weights_only=False)",
    "import subprocess\nsubprocess.run('ls', shell=True)", "import jinja2\njinja2.Environment()",
    "import urllib.request", "import requests",
])
def test_each_rule_finds_its_breach(snippet):
    assert violations(snippet), snippet


def test_the_safe_forms_pass():
    assert violations("import yaml, torch\nyaml.safe_load(s)\ntorch.load(p, weights_only=True)\n"
                      "model.eval()\nimport jinja2\njinja2.Environment(autoescape=True)\n") == []


def test_no_module_of_the_package_breaks_a_rule():
    found = [v for path in sorted(PACKAGE.rglob("*.py"))
             for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))]
    assert found == []


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "with space", "x" * 65])
def test_an_extension_name_that_could_leave_the_cache_directory_is_refused(tmp_path, name):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"matrix": {"arch": [name]}, "architectures": {name: "torchvision.models:resnet18"}}))
    with pytest.raises(ConfigError, match="cannot be a name"):
        load_config(path)


def test_workflows_never_run_pull_request_code_with_a_write_token():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text(encoding="utf-8")
        workflow = yaml.safe_load(text)
        triggers = workflow.get(True) or workflow.get("on")  # YAML 1.1 reads a bare `on` as True
        assert "pull_request_target" not in (triggers or {}), path.name
        assert "permissions" in workflow, f"{path.name}: no top-level permissions (the default token is broad)"
        assert workflow["permissions"] != "write-all", path.name
        for job_name, job in workflow["jobs"].items():
            scopes = job.get("permissions", workflow["permissions"])
            writes = {k for k, v in (scopes.items() if isinstance(scopes, dict) else []) if v == "write"}
            assert writes <= {"pull-requests", "checks", "statuses"}, f"{path.name}: {job_name} may write {writes}"
