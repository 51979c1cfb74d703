"""HEBO (Huawei's heteroscedastic evolutionary Bayesian optimisation) as a driver process.

Runs inside ``benchmarks/.hebo-venv`` (made by ``benchmarks/hebo_env.sh``) with
HEBO's defaults. HEBO has no notion of a failed trial, so a failure is told
as the worst output seen so far (before any success it is held back and told
once a success sets that value).
"""

from __future__ import annotations

import math
import random
from typing import Any

from benchmarks.drivers.protocol import plain, serve


def _design(knobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k in knobs:
        if k["kind"] == "choice":
            out.append({"name": k["name"], "type": "cat", "categories": [str(c) for c in k["choices"]]})
        elif k["kind"] == "int":
            kind = "pow_int" if k["log"] else "int"
            out.append({"name": k["name"], "type": kind, "lb": int(k["low"]), "ub": int(k["high"])})
        else:
            kind = "pow" if k["log"] else "num"
            out.append({"name": k["name"], "type": kind, "lb": k["low"], "ub": k["high"]})
    return out


class HeboTuner:
    """One HEBO optimiser with its default settings."""

    def __init__(self, knobs: list[dict[str, Any]], seed: int) -> None:
        import numpy as np
        import torch
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        # HEBO draws from the global generators: seed them for repeatable runs,
        # and keep torch to one thread like every other tuner in the harness.
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        self._np = np
        self._knobs = knobs
        self._opt = HEBO(DesignSpace().parse(_design(knobs)), scramble_seed=seed)
        self._held_back: list[dict[str, Any]] = []
        self._worst = -math.inf

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in self._knobs:
            v = plain(row[k["name"]])
            if k["kind"] == "choice":
                v = next(c for c in k["choices"] if str(c) == str(v))
            elif k["kind"] == "int":
                v = int(min(max(round(v), k["low"]), k["high"]))
            else:
                v = float(min(max(v, k["low"]), k["high"]))
            out[k["name"]] = v
        return out

    def _observe(self, params: dict[str, Any], y: float) -> None:
        import pandas as pd

        row = {k["name"]: (str(params[k["name"]]) if k["kind"] == "choice" else params[k["name"]])
               for k in self._knobs}
        self._opt.observe(pd.DataFrame([row]), self._np.array([[y]]))

    def ask(self) -> dict[str, Any]:
        """HEBO's next suggestion."""
        rec = self._opt.suggest(n_suggestions=1)
        return self._decode(rec.iloc[0].to_dict())

    def tell(self, params: dict[str, Any], output: float | None, cost: float, is_failure: bool) -> None:
        """Observe a trial; failures become the worst output seen."""
        if is_failure or output is None or not math.isfinite(output):
            if math.isfinite(self._worst):
                self._observe(params, self._worst)
            else:
                self._held_back.append(params)
            return
        self._worst = max(self._worst, output)
        self._observe(params, output)
        for held in self._held_back:
            self._observe(held, self._worst)
        self._held_back.clear()


if __name__ == "__main__":
    serve(HeboTuner)
