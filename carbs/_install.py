"""The name this package is installed under, and the install line error messages print.

The import name is ``carbs`` (code written for the reference implementation
imports it), but on PyPI ``carbs`` belongs to an unrelated project, so the
distribution is published as ``carbs-tuner``. Every message that tells a user
what to install takes the line from here, so that it names the right package.
"""

from __future__ import annotations

DISTRIBUTION = "carbs-tuner"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs this package, with an optional extra (``"ray"``, ``"plot"``...)."""
    if extra is None:
        return f"pip install {DISTRIBUTION}"
    return f"pip install '{DISTRIBUTION}[{extra}]'"
