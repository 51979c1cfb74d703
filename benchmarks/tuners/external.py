"""Tuners that run in their own virtual environment, spoken to over JSON lines.

See :mod:`benchmarks.drivers.protocol` for the messages. The virtual
environments are made by ``benchmarks/hebo_env.sh``, ``benchmarks/smac_env.sh``,
``benchmarks/reference_env.sh`` and ``benchmarks/protein_env.sh``; a venv
elsewhere is named by ``CARBS_BENCH_<NAME>_VENV`` (e.g. ``CARBS_BENCH_PROTEIN_VENV``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.spec import KnobValue, Outcome, Problem
from benchmarks.tuners.base import Tuner, TunerUnavailable

logger = logging.getLogger(__name__)

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCHMARKS_DIR.parent

# name -> (venv directory, driver module, script that makes the venv)
EXTERNAL_TUNERS: dict[str, tuple[Path, str, str]] = {
    "hebo": (BENCHMARKS_DIR / ".hebo-venv", "benchmarks.drivers.hebo_driver", "benchmarks/hebo_env.sh"),
    "smac": (BENCHMARKS_DIR / ".smac-venv", "benchmarks.drivers.smac_driver", "benchmarks/smac_env.sh"),
    "reference": (
        BENCHMARKS_DIR / ".reference-venv", "benchmarks.drivers.reference_driver", "benchmarks/reference_env.sh"
    ),
    "protein": (BENCHMARKS_DIR / ".protein-venv", "benchmarks.drivers.protein_driver", "benchmarks/protein_env.sh"),
}
# The reference CARBS is not installed into its venv: its source is a checkout named here.
REFERENCE_SRC_VAR = "CARBS_REFERENCE_SRC"


def venv_python(name: str) -> Path:
    """The interpreter of an out-of-process tuner's venv (``CARBS_BENCH_<NAME>_VENV`` overrides its place)."""
    venv = Path(os.environ.get(f"CARBS_BENCH_{name.upper()}_VENV", EXTERNAL_TUNERS[name][0]))
    return venv / "bin" / "python"


def external_unavailable(name: str) -> str | None:
    """Why an out-of-process tuner cannot run here, or None."""
    python = venv_python(name)
    if not python.exists():
        return f"its environment {python.parent.parent} is missing (run: bash {EXTERNAL_TUNERS[name][2]})"
    if name == "reference":
        src = os.environ.get(REFERENCE_SRC_VAR, "")
        if not (Path(src) / "carbs" / "carbs.py").is_file():
            return f"{REFERENCE_SRC_VAR}={src!r} is not a checkout of imbue-ai/carbs (see docs/benchmarks.md)"
    return None


def numeric_only(problem: Problem) -> str | None:
    """Why a tuner without categorical spaces does not apply to ``problem``, or None."""
    return "it has no categorical spaces" if problem.has_choices else None


class ExternalTuner(Tuner):
    """Runs a driver module in another interpreter and forwards ask/tell to it."""

    def __init__(
        self, name: str, problem: Problem, seed: int, options: dict[str, Any] | None = None
    ) -> None:
        reason = external_unavailable(name)
        if reason:
            raise TunerUnavailable(f"{name}: {reason}")
        self._name = name
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        # One thread per process, like the in-process tuners.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = "1"
        env["WANDB_MODE"] = "disabled"  # the reference imports wandb; nothing may leave the machine
        self._proc = subprocess.Popen(
            [str(venv_python(name)), "-m", EXTERNAL_TUNERS[name][1]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not logger.isEnabledFor(logging.DEBUG) else None,
            text=True,
            cwd=str(REPO_ROOT),
            env=env,
        )
        knobs = [k.to_dict() for k in problem.knobs]
        self._request({"op": "init", "knobs": knobs, "seed": seed, "options": options or {}})

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._proc.stdin is None or self._proc.stdout is None:
            raise RuntimeError(f"{self._name} driver has no pipes")
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(f"{self._name} driver exited (code {self._proc.poll()})") from None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self._name} driver exited (code {self._proc.wait()}) on {message['op']!r}")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            logger.debug("driver trace: %s", reply.get("trace"))
            raise RuntimeError(f"{self._name} driver failed on {message['op']!r}: {reply.get('error')}")
        return reply

    def ask(self) -> dict[str, KnobValue]:
        """The driver's next suggestion."""
        params: dict[str, KnobValue] = self._request({"op": "ask"})["params"]
        return params

    def tell(self, params: dict[str, KnobValue], outcome: Outcome) -> None:
        """Forward a finished trial to the driver."""
        output = None if outcome.is_failure or not math.isfinite(outcome.output) else outcome.output
        self._request(
            {
                "op": "tell",
                "params": params,
                "output": output,
                "cost": outcome.cost,
                "is_failure": outcome.is_failure,
            }
        )

    def close(self) -> None:
        """Ask the driver to exit, then make sure it has."""
        if self._proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError, ValueError):
                self._request({"op": "close"})
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
