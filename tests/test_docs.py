"""The docs cannot drift from the tool: every matrix key and command-line option is described
(the reference pages are generated from them), each default is defined once and is the one a
run gets, the README stays a front page, and the site builds without a broken link."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnetbench import docgen
from resnetbench.config import json_schema, load_config
from resnetbench.settings import SECTIONS

ROOT = Path(__file__).resolve().parent.parent


def test_every_matrix_key_is_described() -> None:
    assert docgen.undocumented_matrix_keys() == []


def test_an_undescribed_key_is_found() -> None:
    schema = json_schema()
    del schema["properties"]["latency"]["properties"]["pairs"]["description"]
    schema["properties"]["latency"]["properties"]["new_key"] = {"type": "integer"}
    assert docgen.undocumented_matrix_keys(schema) == ["latency.pairs", "latency.new_key"]


def test_every_command_line_option_is_described() -> None:
    assert docgen.undocumented_cli_options() == []


def test_an_undescribed_option_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnetbench import cli

    build = cli.build_parser

    def with_bare_option():
        parser = build()
        sub = docgen._subcommands(parser)["validate"]
        sub.add_argument("--bare")
        return parser

    monkeypatch.setattr(cli, "build_parser", with_bare_option)
    assert docgen.undocumented_cli_options() == ["resnetbench validate --bare"]


def test_the_references_list_every_key_and_option() -> None:
    matrix = docgen.matrix_reference()
    for path, _ in docgen.matrix_keys():
        assert f"| `{path}` |" in matrix
    cli = docgen.cli_reference()
    for names, _ in docgen.pytest_options():
        assert f"`{', '.join(names)}" in cli
    for command in docgen._subcommands(__import__("resnetbench.cli").cli.build_parser()):
        assert f"## resnetbench {command}\n" in cli


def test_each_default_is_the_one_a_run_gets(tmp_path: Path) -> None:
    """The schema shows each section's defaults from its class (settings.py); a matrix that sets
    nothing in a section gets the class's defaults."""
    props = json_schema()["properties"]
    m = tmp_path / "m.yaml"
    m.write_text("matrix: {arch: [resnet18]}\n" + "".join(f"{key}: {{}}\n" for key in SECTIONS if key != "dataset"))
    config = load_config(m)
    for key, section in SECTIONS.items():
        node = props[key]["oneOf"][1] if key == "dataset" else props[key]
        shown = {name: prop["default"] for name, prop in node["properties"].items() if "default" in prop}
        defined = {name: value for name, value in section.defaults().items() if value is not None and value != ()}
        assert shown == defined, key
        assert getattr(config, key) == section(), key
    for key in ("input_size", "seed", "allow_slow", "claims"):
        assert props[key]["default"] == getattr(config, key), key
    assert props["compression_settings"]["properties"]["static"]["properties"]["calibration_samples"]["default"] \
        == __import__("resnetbench.registries").registries.get_method("static").defaults["calibration_samples"]


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; reference and measurements go to docs/"


def test_every_page_the_site_lists_exists() -> None:
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)
        else:
            for item in node:
                yield from pages(item)

    listed = list(pages(nav))
    assert len(listed) > 10
    assert [p for p in listed if not (ROOT / "docs" / p).is_file()] == []


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]'")
    done = subprocess.run([str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                         "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "matrix" / "index.html").read_text(encoding="utf-8").count("latency.processes") >= 1
