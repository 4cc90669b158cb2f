"""HTML and Markdown reports rendered from results JSON.

Reads results dicts only (see :mod:`resnetbench.results`) and never imports torch:
reports are built on machines that have none. The HTML report is one self-contained
file: CSS, JavaScript, data and the plotting library are inlined, and it loads nothing
from the network, so it can be attached to a CI run and opened offline.

``cells`` derives the table and chart data, ``figures`` builds the plotly figures,
``html`` renders and writes the page, ``markdown`` the step summary.
"""

from resnetbench.report.cells import counts, pareto_front
from resnetbench.report.html import render_html, write_html
from resnetbench.report.markdown import render_markdown

__all__ = ["counts", "pareto_front", "render_html", "render_markdown", "write_html"]
