"""This project's CARBS behind the ask/tell interface, with the default ``CARBSParams``."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.spec import Knob, KnobValue, Outcome, Problem
from benchmarks.tuners.base import Tuner, TunerUnavailable

# How knobs become CARBS parameters, one rule for every problem: log knobs keep
# LogSpace's default scale (one decade per basic unit); a linear knob's scale
# is a third of its range, so the default search radius moves it by about a
# tenth of the range, as it moves a log knob over a three-decade range. An
# integer knob's scale is at least two integer steps, so that a step is within
# reach of the search radius (CARBS warns otherwise, and a user would heed it).
LINEAR_SCALE_FRACTION = 1.0 / 3.0
MIN_INTEGER_STEPS_PER_UNIT = 2.0


def carbs_unavailable() -> str | None:
    """Why CARBS cannot be imported here, or None."""
    try:
        from carbs import CARBS  # noqa: F401
    except ImportError as exc:
        return f"carbs is not importable: {exc}"
    return None


def to_carbs_param(knob: Knob) -> Any:
    """The CARBS ``Param`` with the knob's bounds, scale and default as search center."""
    from carbs import ChoiceSpace, LinearSpace, LogSpace, Param

    space: Any
    if knob.kind == "choice":
        space = ChoiceSpace(list(knob.choices))
    elif knob.log:
        space = LogSpace(min=knob.low, max=knob.high, is_integer=knob.kind == "int")
    else:
        scale = (knob.high - knob.low) * LINEAR_SCALE_FRACTION
        if knob.kind == "int":
            scale = max(scale, MIN_INTEGER_STEPS_PER_UNIT)
        space = LinearSpace(min=knob.low, max=knob.high, scale=scale, is_integer=knob.kind == "int")
    assert knob.default is not None  # Knob fills in a default for every kind
    return Param(knob.name, space, search_center=knob.default)


class CarbsTuner(Tuner):
    """``carbs.CARBS`` minimising the output, driven by ``suggest`` / ``observe``."""

    def __init__(self, problem: Problem, seed: int) -> None:
        reason = carbs_unavailable()
        if reason:
            raise TunerUnavailable(reason)
        from carbs import CARBS, CARBSParams

        self._names = [k.name for k in problem.knobs]
        params = [to_carbs_param(k) for k in problem.knobs]
        self._opt = CARBS(CARBSParams(better_direction_sign=-1, seed=seed), params)
        self._pending: dict[str, Any] | None = None

    def ask(self) -> dict[str, KnobValue]:
        """CARBS's next suggestion (its id is kept to match the observation)."""
        suggestion = dict(self._opt.suggest().suggestion)
        self._pending = suggestion
        return {name: suggestion[name] for name in self._names}

    def tell(self, params: dict[str, KnobValue], outcome: Outcome) -> None:
        """Observe the trial, with the suggestion's id when it was asked for."""
        from carbs import ObservationInParam

        pending, self._pending = self._pending, None
        if pending is not None and all(pending[n] == params[n] for n in self._names):
            inputs: dict[str, Any] = pending
        else:
            inputs = dict(params)
        output = math.nan if outcome.is_failure else outcome.output
        self._opt.observe(
            ObservationInParam(
                input=inputs, output=output, cost=outcome.cost, is_failure=outcome.is_failure
            )
        )
