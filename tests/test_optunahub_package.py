"""The OptunaHub package in optunahub-package/samplers/carbs follows the registry's layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from carbs._extras import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "optunahub-package"
PACKAGE = REGISTRY / "samplers" / "carbs"


def _front_matter() -> dict[str, object]:
    text = (PACKAGE / "README.md").read_text()
    assert text.startswith("---\n")
    data: dict[str, object] = yaml.safe_load(text.split("---\n")[1])
    return data


def test_layout_and_readme_conventions() -> None:
    optuna = pytest.importorskip("optuna")
    assert {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))} == {
        "__init__.py", "README.md", "LICENSE", "requirements.txt", "example.py",
    }  # fmt: skip
    meta = _front_matter()
    assert set(meta) == {"author", "title", "description", "tags", "optuna_versions", "license"}
    assert all(isinstance(meta[k], str) and meta[k] for k in ("author", "title", "description"))
    tags = meta["tags"]
    assert isinstance(tags, list) and "sampler" in tags  # required for package/samplers/
    versions = meta["optuna_versions"]
    assert isinstance(versions, list) and optuna.__version__ in [str(v) for v in versions]
    assert meta["license"] == "MIT License"
    readme = (PACKAGE / "README.md").read_text()
    for section in ("## Abstract", "## APIs", "## Installation", "## Example"):
        assert f"\n{section}\n" in readme
    assert (PACKAGE / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert (PACKAGE / "requirements.txt").read_text().split()[0].startswith(f"{DISTRIBUTION}[optuna]")


def test_loads_with_optunahub_and_samples() -> None:
    optuna = pytest.importorskip("optuna")
    optunahub = pytest.importorskip("optunahub")
    from carbs.integrations.optuna import CARBSSampler

    module = optunahub.load_local_module("samplers/carbs", registry_root=str(REGISTRY))
    assert module.CARBSSampler is CARBSSampler
    study = optuna.create_study(sampler=module.CARBSSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=6)
    assert len(study.trials) == 6 and len(module.CARBSSampler(seed=0).pareto_set(study)) >= 1


def test_example_runs_from_a_local_registry() -> None:
    pytest.importorskip("optunahub")
    done = subprocess.run(
        [sys.executable, str(PACKAGE / "example.py"), "--local", str(REGISTRY), "--trials", "8"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert "best loss" in done.stdout and "cost" in done.stdout.splitlines()[-1]
