"""Date, machine and package versions for the benchmark report."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.tuners.external import EXTERNAL_TUNERS, REFERENCE_SRC_VAR, REPO_ROOT, venv_python

PACKAGES = ("carbs", "numpy", "scipy", "scikit-learn", "optuna", "cmaes", "torch")
EXTERNAL_PACKAGES = {
    "hebo": ("hebo", "numpy", "torch"),
    "smac": ("smac", "ConfigSpace"),
    "reference": ("torch", "pyro-ppl", "numpy"),
    "protein": ("torch", "pyro-ppl", "numpy"),
}


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


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The commit checked out at ``root`` (with ``+changes`` if the tree differs from it), or None."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + (" +changes" if dirty.stdout.strip() else "")


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
    commit = git_commit()
    if commit:
        lines.append(f"- report made at commit {commit}")
    for name in EXTERNAL_TUNERS:
        python = venv_python(name)
        if python.exists():
            found = _external_versions(python, EXTERNAL_PACKAGES[name])
            if found:
                extra = f"; source {os.environ[REFERENCE_SRC_VAR]}" if (
                    name == "reference" and os.environ.get(REFERENCE_SRC_VAR)) else ""
                lines.append(f"- {name} environment: {found}{extra}")
    return lines
