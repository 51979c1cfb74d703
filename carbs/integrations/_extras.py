"""The error raised when an integration's optional dependency is missing."""

from __future__ import annotations


def missing_extra(extra: str, library: str, error: ImportError) -> ImportError:
    """An ``ImportError`` that names the pip extra to install, chained to ``error``."""
    message = (
        f"carbs.integrations.{extra} needs {library}, which could not be imported ({error}); "
        f"install it with: pip install 'carbs[{extra}]'"
    )
    new = ImportError(message, name=error.name)
    new.__cause__ = error
    return new
