"""The reference CARBS (imbue-ai/carbs) as a driver process.

Runs inside ``benchmarks/.reference-venv`` (made by ``benchmarks/reference_env.sh``)
and imports the reference source from the directory named by the environment
variable ``CARBS_REFERENCE_SRC`` (a checkout of imbue-ai/carbs: the directory
that holds its ``carbs/`` package). The knobs map to the reference's spaces
by the same rule as this project's CARBS adapter (``benchmarks/tuners/carbs_tuner.py``)
and the settings are the reference's defaults except logging and checkpoints,
which are switched off. See docs/benchmarks.md, "How the peers are driven".
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

from benchmarks.drivers.protocol import plain, serve

# The same mapping rule as benchmarks/tuners/carbs_tuner.py (kept in step by hand:
# this module runs in another interpreter without the project installed).
LINEAR_SCALE_FRACTION = 1.0 / 3.0
MIN_INTEGER_STEPS_PER_UNIT = 2.0


def reference_source() -> str:
    """The directory holding the reference ``carbs`` package, from ``CARBS_REFERENCE_SRC``."""
    src = os.environ.get("CARBS_REFERENCE_SRC", "")
    if not src or not os.path.isfile(os.path.join(src, "carbs", "carbs.py")):
        raise RuntimeError(
            f"CARBS_REFERENCE_SRC={src!r} is not a checkout of imbue-ai/carbs "
            "(expected <dir>/carbs/carbs.py); see docs/benchmarks.md"
        )
    return src


def _space(knob: dict[str, Any]) -> Any:
    from carbs import LinearSpace, LogSpace

    is_int = knob["kind"] == "int"
    if knob["kind"] == "choice":
        raise ValueError(f"knob {knob['name']!r}: the reference CARBS has no categorical spaces")
    if knob["log"]:
        return LogSpace(min=knob["low"], max=knob["high"], is_integer=is_int)
    scale = (knob["high"] - knob["low"]) * LINEAR_SCALE_FRACTION
    if is_int:
        scale = max(scale, MIN_INTEGER_STEPS_PER_UNIT)
    return LinearSpace(min=knob["low"], max=knob["high"], scale=scale, is_integer=is_int)


class ReferenceCarbs:
    """The reference ``CARBS`` minimising the output, with its default ``CARBSParams``."""

    def __init__(self, knobs: list[dict[str, Any]], seed: int) -> None:
        sys.path.insert(0, reference_source())
        os.environ.setdefault("WANDB_MODE", "disabled")
        import torch

        from carbs import CARBS, CARBSParams, Param

        torch.set_num_threads(1)
        self._knobs = knobs
        params = [Param(k["name"], _space(k), search_center=k["default"]) for k in knobs]
        config = CARBSParams(
            better_direction_sign=-1,
            seed=seed,
            is_wandb_logging_enabled=False,
            is_saved_on_every_observation=False,
        )
        self._opt = CARBS(config, params)
        self._pending: dict[str, Any] | None = None

    def ask(self) -> dict[str, Any]:
        """The reference's next suggestion, held to its bounds and integer grid."""
        suggestion = dict(self._opt.suggest().suggestion)
        self._pending = suggestion
        out: dict[str, Any] = {}
        for k in self._knobs:
            v = float(plain(suggestion[k["name"]]))
            v = min(max(v, k["low"]), k["high"])
            out[k["name"]] = int(round(v)) if k["kind"] == "int" else v
        return out

    def tell(self, params: dict[str, Any], output: float | None, cost: float, is_failure: bool) -> None:
        """Observe a trial (with the suggestion's id when it was asked for)."""
        from carbs import ObservationInParam

        pending, self._pending = self._pending, None
        inputs: dict[str, Any] = dict(params)
        if pending is not None:
            # The suggestion as the reference made it (unclipped, with its id).
            inputs = pending
        value = math.nan if is_failure or output is None else float(output)
        self._opt.observe(ObservationInParam(input=inputs, output=value, cost=cost, is_failure=is_failure))


if __name__ == "__main__":
    serve(ReferenceCarbs)
