"""Random search: every knob drawn independently, uniformly on its own scale."""

from __future__ import annotations

import numpy as np

from benchmarks.spec import KnobValue, Outcome, Problem
from benchmarks.tuners.base import Tuner


class RandomSearch(Tuner):
    """Uniform sampling (log-uniform for log knobs); ignores what it is told."""

    def __init__(self, problem: Problem, seed: int) -> None:
        self._knobs = problem.knobs
        self._rng = np.random.default_rng([seed, 7])

    def ask(self) -> dict[str, KnobValue]:
        """A fresh uniform draw."""
        out: dict[str, KnobValue] = {}
        for k in self._knobs:
            if k.is_numeric:
                out[k.name] = k.from_unit(float(self._rng.uniform()))
            else:
                out[k.name] = k.choices[int(self._rng.integers(len(k.choices)))]
        return out

    def tell(self, params: dict[str, KnobValue], outcome: Outcome) -> None:
        """Random search does not learn."""
