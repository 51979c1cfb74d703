"""Date, machine and package versions for the benchmark report."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.tuners.external import EXTERNAL_TUNERS

PACKAGES = ("carbs", "numpy", "scipy", "scikit-learn", "optuna", "cmaes", "torch")
EXTERNAL_PACKAGES = {"hebo": ("hebo", "numpy", "torch"), "smac": ("smac", "ConfigSpace")}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _external_versions(python: Path, packages: tuple[str, ...]) -> str | None:
    code = (
        "import importlib.metadata as m\n"
        f"print(' '.join(p + ' ' + m.version(p) for p in {packages!r}))"
    )
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_lines() -> list[str]:
    """Markdown bullet lines describing when and where the benchmark ran."""
    versions = ", ".join(f"{p} {v}" for p in PACKAGES if (v := _version(p)))
    lines = [
        f"- date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
    ]
    for name, (venv, _, _) in EXTERNAL_TUNERS.items():
        python = venv / "bin" / "python"
        if python.exists():
            found = _external_versions(python, EXTERNAL_PACKAGES[name])
            if found:
                lines.append(f"- {name} environment: {found}")
    return lines
