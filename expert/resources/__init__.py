"""Installed copies of the top-level facts/, rules/ and templates/ (mapped here by pyproject.toml)."""
