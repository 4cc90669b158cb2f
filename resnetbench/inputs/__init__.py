"""Files a matrix names, checked when it is loaded (``config.load_config``) without torch:
checkpoints (``checkpoints.py``) and image folders (``imagefolders.py``)."""

from __future__ import annotations

from typing import Any


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, cut short (a message names the value, not a megabyte of it)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
