"""Moved to ``resnetbench.backends.size`` (a backend owns its artifact's size formula, issue 28).
Kept so that extensions importing the old path, as the docs once showed
(``measure.size.folded_formula``), keep working."""

from resnetbench.backends.size import (
    Inventory,
    explain,
    float_formula,
    folded_formula,
    int8_formula,
    inventory,
    size_record,
)

__all__ = ["Inventory", "explain", "float_formula", "folded_formula", "int8_formula", "inventory", "size_record"]
