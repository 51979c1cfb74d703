"""Optional dependencies (pip extras): the one place that knows how to install them.

The distribution name lives here only, so renaming the package on PyPI
changes every install command the program prints.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The import name is `carbs` (code written for the reference implementation
# imports it), but on PyPI `carbs` belongs to an unrelated project.
DISTRIBUTION = "carbs-tuner"


def install_command(extra: str) -> str:
    """The shell command that installs an extra, e.g. ``pip install 'carbs-tuner[plot]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


class MissingExtraError(ImportError):
    """An optional dependency is not installed; ``extra`` names the pip extra that brings it.

    The command line prints the message as one line and exits with code 6.
    """

    def __init__(self, what: str, library: str, extra: str, error: ImportError | None = None) -> None:
        detail = f" ({error})" if error is not None and str(error) else ""
        super().__init__(
            f"{what} needs {library}, which could not be imported{detail}; "
            f"install it with: {install_command(extra)}",
            name=error.name if error is not None else None,
        )
        self.extra = extra
        self.library = library
        if error is not None:
            self.__cause__ = error


def require(module: str, *, library: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(what, library, extra, e) from e
