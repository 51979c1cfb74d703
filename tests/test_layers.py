"""The package's shape: a fast ``import carbs``, no import circles, lower layers never import upper ones."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "carbs"
# Libraries that `import carbs` and `carbs --help` must not load.
HEAVY = (
    "numpy", "scipy", "sklearn", "sqlalchemy", "rich", "yaml", "pandas", "matplotlib",
    "starlette", "uvicorn", "plotly",
)


def _run(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_carbs_and_cli_help_load_no_heavy_library() -> None:
    result = _run(
        f"""
        import contextlib, io, json, sys
        import carbs
        after_import = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        from carbs.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                main(["--help"])
            except SystemExit:
                pass
        after_help = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        # Every command is still listed, although their modules load their libraries lazily.
        listed = all(c in out.getvalue() for c in ("run", "worker", "status", "trials", "report"))
        print(json.dumps({{"import": after_import, "help": after_help, "listed": listed}}))
        """
    )
    assert result == {"import": [], "help": [], "listed": True}


def test_every_top_level_name_still_works() -> None:
    result = _run(
        """
        import json
        import carbs
        from carbs import *  # noqa: F403
        from carbs import CARBS, CARBSParams, LogSpace, Param, create_study, load_study, report, Study
        from carbs.optimizer.loop import CARBS as Direct
        names = ["CARBS", "SUGGESTION_ID_DICT_KEY", "CARBSParams", "ChoiceSpace", "LinearSpace",
                 "LogSpace", "LogitSpace", "ObservationInBasic", "ObservationInParam", "ObserveOutput",
                 "OutstandingSuggestionEstimatorEnum", "Param", "ParetoPoint", "RealNumberSpace",
                 "SearchSpace", "SpaceError", "StateError", "SuggestOutput", "SuggestionInBasic",
                 "WandbLoggingParams", "__version__", "create_study", "load_study", "Study", "report"]
        missing = [n for n in names if not hasattr(carbs, n)]
        print(json.dumps({"missing": missing, "same": CARBS is Direct, "dir": set(names) <= set(dir(carbs))}))
        """
    )
    assert result == {"missing": [], "same": True, "dir": True}
    import carbs

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        carbs.nonexistent  # noqa: B018


def _imports() -> dict[str, set[str]]:
    """Module -> the carbs modules it imports, annotation-only imports included."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        modules[".".join(parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in found:
                if target.split(".")[0] == "carbs":
                    resolved = resolve(target)
                    if resolved and resolved != name:
                        targets.add(resolved)
        edges[name] = targets
    return edges


# Edges the circle check ignores: none (the optimizer reaches the W&B logger
# through carbs._loggers, a registry, not an import).
_OUT_OF_SCOPE: set[tuple[str, str]] = set()


def _circle_through(edges: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    edges = {m: {t for t in ts if (m, t) not in _OUT_OF_SCOPE} for m, ts in edges.items()}
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


# Layer -> modules it must never import (also not for annotations).
_FORBIDDEN = {
    "carbs.optimizer": (
        "carbs.storage", "carbs.study", "carbs.runner", "carbs.cli", "carbs.analysis", "carbs.integrations",
        "carbs.dashboard", "carbs.sweep_config", "carbs.launchers",
    ),
    "carbs.storage": (
        "carbs.study", "carbs.runner", "carbs.launchers", "carbs.cli", "carbs.analysis", "carbs.integrations",
        "carbs.dashboard",
    ),
    "carbs.sweep_config": (
        "carbs.study", "carbs.runner", "carbs.launchers", "carbs.cli", "carbs.analysis", "carbs.integrations",
    ),
    "carbs.study": (
        "carbs.runner", "carbs.launchers", "carbs.cli", "carbs.analysis", "carbs.integrations", "carbs.dashboard",
    ),
    "carbs.runner": ("carbs.launchers", "carbs.cli", "carbs.analysis", "carbs.integrations", "carbs.dashboard"),
    "carbs.launchers": ("carbs.cli", "carbs.analysis", "carbs.integrations", "carbs.dashboard"),
}


def test_lower_layers_never_import_upper_ones() -> None:
    edges = _imports()
    wrong = [
        f"{module} -> {target}"
        for module, targets in edges.items()
        for layer, forbidden in _FORBIDDEN.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert wrong == []


@pytest.mark.parametrize(
    "module",
    ["carbs.study", "carbs.study.core", "carbs.study.pool", "carbs.study.asking", "carbs.study.export",
     "carbs.study.optimize", "carbs.runner.worker", "carbs.launchers", "carbs.launchers.slurm",
     "carbs.storage", "carbs.cli", "carbs"],
)
def test_no_import_circle(module: str) -> None:
    assert _circle_through(_imports(), module) is None


def test_no_module_imports_private_names_of_another_package() -> None:
    # A private name may change with its package; other packages use its public API.
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("carbs.")):
                continue
            package = ".".join(node.module.split(".")[:2])
            if module == package or module.startswith(package + "."):
                continue
            wrong += [
                f"{module}: {node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    assert wrong == []
