"""The error raised when an integration's optional dependency is missing."""

from __future__ import annotations

from carbs._extras import MissingExtraError


def missing_extra(extra: str, library: str, error: ImportError) -> ImportError:
    """An ``ImportError`` that names the pip extra to install, chained to ``error``."""
    return MissingExtraError(f"carbs.integrations.{extra}", library, extra, error)
