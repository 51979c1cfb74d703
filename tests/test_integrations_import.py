"""The integrations are optional: ``import carbs`` never loads Ray, Optuna or W&B."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_HEAVY = ("ray", "optuna", "wandb")


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_and_using_carbs_loads_no_integration_library() -> None:
    result = _run(
        """
        import json, sys
        import carbs
        import carbs.integrations
        from carbs import CARBS, CARBSParams, LogSpace, ObservationInParam, Param

        opt = CARBS(CARBSParams(seed=0), [Param("lr", LogSpace(min=1e-5, max=1.0), search_center=1e-3)])
        s = opt.suggest().suggestion
        opt.observe(ObservationInParam(s, 1.0, 1.0))
        opt.get_pareto_set()
        heavy = ("ray", "optuna", "wandb")
        print(json.dumps({"loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}))
        """
    )
    assert result == {"loaded": []}


def test_missing_extras_name_the_pip_extra_to_install() -> None:
    result = _run(
        f"""
        import json, sys
        for name in {_HEAVY!r}:
            sys.modules[name] = None  # as if the extra were not installed
        import carbs
        from carbs import CARBS, CARBSParams, LinearSpace, Param

        messages = {{}}
        for module in ("ray", "optuna", "wandb"):
            try:
                __import__("carbs.integrations." + module)
            except ImportError as e:
                messages[module] = str(e)
        try:
            CARBS(
                CARBSParams(is_wandb_logging_enabled=True),
                [Param("x", LinearSpace(min=0.0, max=1.0), search_center=0.5)],
            )
        except ImportError as e:
            messages["optimizer"] = str(e)
        print(json.dumps(messages))
        """
    )
    assert set(result) == {"ray", "optuna", "wandb", "optimizer"}
    for extra in _HEAVY:
        assert f"pip install 'carbs-tuner[{extra}]'" in str(result[extra]), result[extra]
        assert f"carbs.integrations.{extra}" in str(result[extra])
    assert "pip install 'carbs-tuner[wandb]'" in str(result["optimizer"])
