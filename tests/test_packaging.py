"""The distribution name users install, and the messages that tell them how."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from carbs._extras import DISTRIBUTION, install_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# `carbs[...]` or `pip install carbs` names the unrelated PyPI project of that name.
WRONG = re.compile(r"(?<![\w.-])carbs\[|pip install\s+[\"']?carbs(?![\w-])")


def test_pyproject_uses_the_distribution_name_and_an_spdx_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["license"] == "MIT" and (ROOT / "LICENSE").is_file()
    assert not any("License ::" in c for c in project.get("classifiers", []))
    assert all(dep.startswith(f"{DISTRIBUTION}[") for dep in project["optional-dependencies"]["all"])


def test_install_command_names_the_distribution() -> None:
    assert DISTRIBUTION == "carbs-tuner"
    assert install_command("ray") == "pip install 'carbs-tuner[ray]'"


def test_no_install_line_names_the_other_project() -> None:
    files = [*(ROOT / "carbs").rglob("*.py"), *(ROOT / "examples").rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md"]
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in files
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if WRONG.search(line)
    ]
    assert offenders == []
    assert WRONG.search("pip install 'carbs[ray]'") and WRONG.search("pip install carbs")
    assert not WRONG.search(install_command("ray")) and not WRONG.search("pip install -e '.[plot]'")
