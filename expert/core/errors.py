"""One exception hierarchy; the CLI turns every ExpertError into a one-line message and exit 2."""

from __future__ import annotations


class ExpertError(Exception):
    """Base of every error a user can cause and fix (bad input, bad data)."""


class InputError(ExpertError):
    """A request value is invalid (unknown model, negative budget, ...)."""


class FactError(ExpertError):
    """A fact catalog under facts/ is malformed."""


class RuleError(ExpertError):
    """A rule file under rules/ is malformed or unsafe."""


class TemplateError(ExpertError):
    """A rendering template failed."""


def located(path: object, line: int | None, where: str, message: str) -> str:
    """Format `file:line: where: message`, the shape every data error takes."""
    loc = f"{path}:{line}" if line else f"{path}"
    return f"{loc}: {where}: {message}" if where else f"{loc}: {message}"
