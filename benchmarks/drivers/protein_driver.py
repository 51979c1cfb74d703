"""PufferLib's Protein (pufferlib 3.0.0, ``pufferlib/sweep.py``) as a driver process.

Runs inside ``benchmarks/.protein-venv`` (made by ``benchmarks/protein_env.sh``,
which leaves ``sweep.py`` in ``<venv>/sweep_src/``). ``sweep.py`` imports the
``pufferlib`` package only for ``unroll_nested_dict``; this driver provides
that one function as a stand-in module instead of installing the package
(whose build needs network access). Protein is built the way ``puffer
sweep`` builds it, ``Protein(sweep_config)`` with its constructor defaults,
except ``max_suggestion_cost``, whose default (3600, seconds in PufferLib)
has no meaning in a benchmark's cost units and is lifted, as no other tuner
here gets a cap. See docs/benchmarks.md, "How the peers are driven".
"""

from __future__ import annotations

import math
import os
import random
import sys
import types
from collections.abc import Iterator
from typing import Any

from benchmarks.drivers.protocol import plain, serve


def unroll_nested_dict(d: Any) -> Iterator[tuple[str, Any]]:
    """Flatten ``{"a": {"b": 1}}`` into ``("a/b", 1)`` pairs, as ``pufferlib.unroll_nested_dict`` does."""
    for key, value in d.items():
        if isinstance(value, dict):
            for inner_key, inner in unroll_nested_dict(value):
                yield f"{key}/{inner_key}", inner
        else:
            yield key, value


def load_sweep_module() -> Any:
    """Import ``sweep.py`` from ``<venv>/sweep_src`` with the ``pufferlib`` stand-in in place."""
    src = os.path.join(sys.prefix, "sweep_src")
    if not os.path.isfile(os.path.join(src, "sweep.py")):
        raise RuntimeError(f"{src}/sweep.py is missing: run benchmarks/protein_env.sh")
    stand_in = types.ModuleType("pufferlib")
    stand_in.unroll_nested_dict = unroll_nested_dict  # type: ignore[attr-defined]
    sys.modules.setdefault("pufferlib", stand_in)
    sys.path.insert(0, src)
    import sweep

    return sweep


def sweep_config(knobs: list[dict[str, Any]]) -> dict[str, Any]:
    """PufferLib's sweep section for these knobs: ``log_normal`` / ``uniform`` / ``int_uniform``, scale ``auto``."""
    config: dict[str, Any] = {"method": "Protein", "metric": "score", "goal": "maximize"}
    for k in knobs:
        if k["kind"] == "choice":
            raise ValueError(f"knob {k['name']!r}: Protein has no categorical spaces")
        if k["log"]:
            distribution = "log_normal"  # integers are rounded by the driver
        else:
            distribution = "int_uniform" if k["kind"] == "int" else "uniform"
        config[k["name"]] = {
            "distribution": distribution, "min": k["low"], "max": k["high"],
            "mean": k["default"], "scale": "auto",
        }
    return config


class ProteinTuner:
    """One ``Protein`` maximising the negated output (its Pareto set treats higher as better)."""

    def __init__(self, knobs: list[dict[str, Any]], seed: int) -> None:
        import numpy as np
        import torch

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        sweep = load_sweep_module()
        self._knobs = knobs
        self._opt = sweep.Protein(sweep_config(knobs), max_suggestion_cost=math.inf)
        self._worst = math.inf  # the lowest score (negated output) seen so far
        self._held_back: list[tuple[dict[str, Any], float]] = []

    def ask(self) -> dict[str, Any]:
        """Protein's next suggestion, held to the bounds and integer grid."""
        suggestion, _info = self._opt.suggest(None)
        out: dict[str, Any] = {}
        for k in self._knobs:
            v = min(max(float(plain(suggestion[k["name"]])), k["low"]), k["high"])
            out[k["name"]] = int(round(v)) if k["kind"] == "int" else v
        return out

    def tell(self, params: dict[str, Any], output: float | None, cost: float, is_failure: bool) -> None:
        """Observe ``-output``; a failure is told as the worst score seen (held back until there is one)."""
        hypers = {k["name"]: float(params[k["name"]]) for k in self._knobs}
        if is_failure or output is None or not math.isfinite(output):
            if math.isfinite(self._worst):
                self._opt.observe(hypers, self._worst, cost)
            else:
                self._held_back.append((hypers, cost))
            return
        score = -float(output)
        self._worst = min(self._worst, score)
        self._opt.observe(hypers, score, cost)
        for held, held_cost in self._held_back:
            self._opt.observe(held, self._worst, held_cost)
        self._held_back.clear()


if __name__ == "__main__":
    serve(ProteinTuner)
