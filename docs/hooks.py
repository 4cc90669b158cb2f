"""MkDocs build hook: the reference pages' tables come from the code (resnetbench.tools.docgen),
so the matrix reference and the CLI reference cannot drift from what the tool accepts."""

from __future__ import annotations

from typing import Any

MARKERS = {
    "<!-- generated: matrix-reference -->": "matrix_reference",
    "<!-- generated: cli-reference -->": "cli_reference",
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    from resnetbench import docgen

    for marker, function in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, getattr(docgen, function)())
    return markdown
