"""SMAC3 with its cost-aware acquisition (expected improvement per second) as a driver process.

Runs inside ``benchmarks/.smac-venv`` (made by ``benchmarks/smac_env.sh``).
This is SMAC's hyperparameter-optimisation facade (random forest, its own
initial design and intensifier) with the two changes SMAC documents for cost
awareness: one random forest for the output and one for log(1 + cost), and
the ``EIPS`` acquisition with its run-history encoder. Each setting is run
once (the problems are treated as deterministic). Failures are told as
``CRASHED`` with the worst output seen so far as their cost (SMAC's default
crash cost is infinite, which its random forest cannot fit); a failure before
any success is held back until a success sets that value.
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from benchmarks.drivers.protocol import plain, serve


def _configspace(knobs: list[dict[str, Any]], seed: int) -> Any:
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for k in knobs:
        if k["kind"] == "choice":
            cs.add(Categorical(k["name"], [str(c) for c in k["choices"]], default=str(k["default"])))
        elif k["kind"] == "int":
            cs.add(Integer(k["name"], (int(k["low"]), int(k["high"])), log=k["log"],
                           default=int(k["default"])))
        else:
            cs.add(Float(k["name"], (k["low"], k["high"]), log=k["log"], default=float(k["default"])))
    return cs


class SmacEipsTuner:
    """One SMAC optimiser driven through ``ask`` / ``tell``."""

    def __init__(self, knobs: list[dict[str, Any]], seed: int, max_trials: int = 100) -> None:
        from smac import HyperparameterOptimizationFacade as Facade
        from smac import Scenario
        from smac.acquisition.function import EIPS
        from smac.model.multi_objective_model import MultiObjectiveModel
        from smac.runhistory.encoder import RunHistoryEIPSEncoder

        self._knobs = knobs
        self._cs = _configspace(knobs, seed)
        self._tmp = tempfile.TemporaryDirectory(prefix="smac-bench-")
        scenario = Scenario(self._cs, deterministic=True, n_trials=max_trials, seed=seed,
                            output_directory=self._tmp.name)
        model = MultiObjectiveModel(
            models=[Facade.get_model(scenario), Facade.get_model(scenario)],
            objectives=["output", "cost"],
            seed=seed,
        )
        self._smac = Facade(
            scenario,
            target_function=self._never_called,
            model=model,
            acquisition_function=EIPS(),
            runhistory_encoder=RunHistoryEIPSEncoder(scenario),
            intensifier=Facade.get_intensifier(scenario, max_config_calls=1),
            overwrite=True,
            logging_level=40,
        )
        self._pending: dict[str, Any] = {}
        self._held_back: list[tuple[Any, float]] = []
        self._worst = -math.inf

    @staticmethod
    def _never_called(config: Any, seed: int = 0) -> float:
        raise RuntimeError("the benchmark harness runs trials itself")

    def _decode(self, config: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        values = dict(config)
        for k in self._knobs:
            v = plain(values[k["name"]])
            if k["kind"] == "choice":
                v = next(c for c in k["choices"] if str(c) == str(v))
            elif k["kind"] == "int":
                v = int(v)
            else:
                v = float(v)
            out[k["name"]] = v
        return out

    def ask(self) -> dict[str, Any]:
        """SMAC's next trial."""
        info = self._smac.ask()
        params = self._decode(info.config)
        self._pending[repr(sorted(params.items()))] = info
        return params

    def tell(self, params: dict[str, Any], output: float | None, cost: float, is_failure: bool) -> None:
        """Tell SMAC the output and the cost (as the trial's time)."""
        from ConfigSpace import Configuration
        from smac.runhistory import StatusType, TrialInfo, TrialValue

        info = self._pending.pop(repr(sorted(params.items())), None)
        if info is None:
            values = {k["name"]: (str(params[k["name"]]) if k["kind"] == "choice" else params[k["name"]])
                      for k in self._knobs}
            info = TrialInfo(config=Configuration(self._cs, values=values), seed=0)
        if is_failure or output is None or not math.isfinite(output):
            if math.isfinite(self._worst):
                self._smac.tell(info, TrialValue(cost=self._worst, time=cost, status=StatusType.CRASHED),
                                save=False)
            else:
                self._held_back.append((info, cost))
            return
        self._worst = max(self._worst, output)
        self._smac.tell(info, TrialValue(cost=output, time=cost, status=StatusType.SUCCESS), save=False)
        for held, held_cost in self._held_back:
            self._smac.tell(held, TrialValue(cost=self._worst, time=held_cost, status=StatusType.CRASHED),
                            save=False)
        self._held_back.clear()


if __name__ == "__main__":
    serve(SmacEipsTuner)
