"""No compression: the model as its weights make it, at the case's dtype."""

from __future__ import annotations

from resnetbench.compress.base import FLOATS, Method

METHOD = Method("none", FLOATS, settings_schema={})
