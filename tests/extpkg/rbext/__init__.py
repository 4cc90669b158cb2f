"""Example resnetbench extension (see pyproject.toml for how it registers)."""
