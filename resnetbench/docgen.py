"""The docs' reference pages, generated: the matrix keys from the matrix file's JSON Schema
(``config.json_schema``) and the command line from the argument parsers (``cli.build_parser`` and
the pytest plugin's options). The docs site's build hook (``docs/hooks.py``) writes them into the
pages; ``tests/test_docs.py`` fails when a key or an option has no description.

Nothing here is copied by hand, so the reference cannot drift from what ``validate`` accepts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

# Keys whose sub-keys are one table per name (every dtype or method, each a table of metrics): the
# reference describes the table once instead of listing every name.
REPEATED = ("tolerances.dtype", "tolerances.compression")


def _type_of(node: dict[str, Any]) -> str:
    if "oneOf" in node:
        return " or ".join(_type_of(alt) for alt in node["oneOf"])
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(node.get('items', {}))}"
    return str(kind)


def _allowed(node: dict[str, Any]) -> str:
    node = node.get("items", node)
    if "enum" in node:
        return ", ".join(f"`{v}`" for v in node["enum"])
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    lo = "" if low is None else ("> " if "exclusiveMinimum" in node else "≥ ") + str(low)
    hi = "" if high is None else ("< " if "exclusiveMaximum" in node else "≤ ") + str(high)
    return ", ".join(part for part in (lo, hi) if part)


def matrix_keys(schema: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every key of the matrix format as (dotted path, its schema), parents before children."""
    if schema is None:
        from resnetbench.config import json_schema

        schema = json_schema()

    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, child in (node.get("properties") or {}).items():
            here = f"{path}.{key}" if path else key
            yield here, child
            if here.startswith(REPEATED):
                continue
            yield from walk(child, here)
            for alternative in child.get("oneOf", []):
                yield from walk(alternative, here)

    yield from walk(schema, "")


def undocumented_matrix_keys(schema: dict[str, Any] | None = None) -> list[str]:
    return [path for path, node in matrix_keys(schema) if not node.get("description")]


def matrix_reference() -> str:
    """A Markdown table of every matrix key: type, allowed values, default, meaning."""
    rows = ["| key | type | allowed | default | meaning |", "|---|---|---|---|---|"]
    for path, node in matrix_keys():
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        text = str(node.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_of(node)} | {_allowed(node)} | {default} | {text} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- command line


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return choice.help or ""
    return ""


def _arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield action


class _OptionRecorder:
    """Stands in for pytest's parser: records what the plugin's ``pytest_addoption`` adds."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> _OptionRecorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


def pytest_options() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    from resnetbench import plugin

    recorder = _OptionRecorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder.options


def undocumented_cli_options() -> list[str]:
    from resnetbench.cli import build_parser

    parser = build_parser()
    missing = []
    for name, sub in _subcommands(parser).items():
        if not _help_of(parser, name):
            missing.append(f"resnetbench {name}")
        for action in _arguments(sub):
            if not action.help:
                missing.append(f"resnetbench {name} {'/'.join(action.option_strings) or action.dest}")
    missing += [f"pytest {'/'.join(names)}" for names, kwargs in pytest_options() if not kwargs.get("help")]
    return missing


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("%%", "%")


def cli_reference() -> str:
    """Markdown: the pytest plugin's options, then every ``resnetbench`` subcommand's arguments."""
    from resnetbench.cli import build_parser

    out = ["## pytest --matrix", "", "| option | meaning |", "|---|---|"]
    for names, kwargs in pytest_options():
        metavar = f" {kwargs['metavar']}" if kwargs.get("metavar") else ""
        out.append(f"| `{', '.join(names)}{metavar}` | {_cell(str(kwargs.get('help', '')))} |")
    parser = build_parser()
    for name, sub in _subcommands(parser).items():
        out += ["", f"## resnetbench {name}", "", _help_of(parser, name), "", "```text",
                sub.format_usage().strip().replace("usage: ", ""), "```", ""]
        rows = [(", ".join(a.option_strings) or a.dest, a) for a in _arguments(sub)]
        if rows:
            out += ["| argument | meaning | default |", "|---|---|---|"]
            for label, action in rows:
                shown = action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                default = f"`{action.default}`" if shown else ""
                help_text = action.help % {"default": action.default} if action.help else ""
                out.append(f"| `{label}` | {_cell(help_text)} | {default} |")
    return "\n".join(out)
