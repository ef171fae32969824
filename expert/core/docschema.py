"""The JSON documents the tool writes: their schema version and the shipped JSON Schema (resources/schema)."""

from __future__ import annotations

SCHEMA_VERSION = "1.0"
