"""Logging a CARBS search to Weights & Biases (``pip install 'carbs-tuner[wandb]'``).

Three ways to use it:

* ``CARBSParams(is_wandb_logging_enabled=True, wandb_params=WandbLoggingParams(...))``:
  the optimizer logs every suggestion and observation itself;
* a plain loop: ``logger = WandbLogger(project="sweep", better_direction_sign=-1)``,
  then ``logger.observe(observation)`` after each run and ``logger.finish()``;
* a study: ``logger.log_study(study)`` logs the observations not logged yet
  (call it after every trial, or once at the end), each followed by its
  learning curve if the trial reported one (rows ``curve/trial_number``,
  ``curve/step``, ``curve/value``, ``curve/cost``: plot ``curve/value``
  against ``curve/cost`` grouped by ``curve/trial_number``).

Each observation row holds the parameters, the output, the cost, whether it
failed, the best output so far and the cumulative cost; every
``pareto_plot_every`` successful observations a performance-cost plot
(observations and the Pareto front) is logged as an image (needs matplotlib).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from carbs._extras import install_command
from carbs.integrations._extras import missing_extra

try:
    import wandb
except ImportError as e:
    raise missing_extra("wandb", "Weights & Biases", e) from e

from carbs.integrations._pareto_plot import observed_front, render_png
from carbs.optimizer.config import WandbLoggingParams
from carbs.optimizer.types import SUGGESTION_ID_DICT_KEY, ObservationInParam, ParetoPoint

if TYPE_CHECKING:
    from carbs.optimizer.loop import CARBS
    from carbs.study import Study

logger = logging.getLogger(__name__)

__all__ = ["WandbLogger"]


class WandbLogger:
    """Writes a CARBS search to a W&B run.

    Args:
        run: an existing run to log to (it is left open by :meth:`finish`); by
            default a new run is started with the arguments below.
        project, group, name, run_id, dir: passed to ``wandb.init`` (``run_id``
            resumes that run if it exists).
        config: the run's config (settings, search space).
        better_direction_sign: ``1`` if a higher output is better, ``-1`` if lower.
        pareto_plot_every: log the performance-cost plot every this many
            successful observations (``0``: only when asked).
        is_suggestion_logged, is_observation_logged: what to log.
        init_kwargs: any further ``wandb.init`` arguments.
    """

    def __init__(
        self,
        run: Any | None = None,
        *,
        project: str | None = None,
        group: str | None = None,
        name: str | None = None,
        run_id: str | None = None,
        dir: str | None = None,
        config: Mapping[str, Any] | None = None,
        better_direction_sign: int = 1,
        pareto_plot_every: int = 10,
        is_suggestion_logged: bool = True,
        is_observation_logged: bool = True,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if better_direction_sign not in (1, -1) or isinstance(better_direction_sign, bool):
            raise ValueError(
                f"better_direction_sign must be 1 (maximise) or -1 (minimise), got {better_direction_sign!r}"
            )
        if not isinstance(pareto_plot_every, int) or pareto_plot_every < 0:
            raise ValueError(f"pareto_plot_every must be an integer >= 0, got {pareto_plot_every!r}")
        self._owns_run = run is None
        if run is None:
            kwargs: dict[str, Any] = dict(init_kwargs or {})
            kwargs.update(project=project, group=group, name=name, dir=dir)
            if config is not None:
                kwargs["config"] = dict(config)
            if run_id is not None:
                kwargs.update(id=run_id, resume="allow")
            run = wandb.init(**kwargs)
        elif config is not None:
            run.config.update(dict(config), allow_val_change=True)
        self.run = run
        self.better_direction_sign = better_direction_sign
        self.pareto_plot_every = pareto_plot_every
        self.is_suggestion_logged = is_suggestion_logged
        self.is_observation_logged = is_observation_logged
        # (cost, output) of every successful observation, for the plot.
        self._successes: list[tuple[float, float]] = []
        self._best: float | None = None
        self._observation_count = 0
        self._cumulative_cost = 0.0
        # Numbers of the study trials already logged (trials finish out of order).
        self._study_logged: set[int] = set()
        self._warned_plot = False

    @classmethod
    def from_params(
        cls, wandb_params: WandbLoggingParams, config_dict: Mapping[str, Any]
    ) -> WandbLogger:
        """The logger CARBS opens when ``is_wandb_logging_enabled`` is set.

        ``config_dict`` becomes the run's config; its ``"params"`` entry (the
        search space) is left out unless ``is_search_space_logged``.
        """
        config = dict(config_dict)
        if not wandb_params.is_search_space_logged:
            config.pop("params", None)
        return cls(
            project=wandb_params.project_name,
            group=wandb_params.group_name,
            name=wandb_params.run_name,
            run_id=wandb_params.run_id,
            # The default "." is W&B's own default too, which also honours $WANDB_DIR.
            dir=None if wandb_params.root_dir in ("", ".") else wandb_params.root_dir,
            config=config,
            better_direction_sign=int(config_dict.get("better_direction_sign", 1)),
            is_suggestion_logged=wandb_params.is_suggestion_logged,
            is_observation_logged=wandb_params.is_observation_logged,
        )

    @staticmethod
    def for_optimizer(optimizer: CARBS) -> WandbLogger:
        """The logger an optimizer opened because ``is_wandb_logging_enabled`` is set.

        Use it to add the final Pareto plot and close the run::

            logger = WandbLogger.for_optimizer(opt)
            logger.log_pareto_plot(opt.get_pareto_set())
            logger.finish()
        """
        found = getattr(optimizer, "_wandb", None)
        if not isinstance(found, WandbLogger):
            raise ValueError(
                "this optimizer logs nothing to W&B: create it with "
                "CARBSParams(is_wandb_logging_enabled=True), or make a WandbLogger yourself "
                "(a loaded optimizer does not reopen its run)"
            )
        return found

    # -- what CARBS calls -------------------------------------------------------------
    def log_suggestion(self, logs: Mapping[str, Any]) -> None:
        """Log a suggestion's diagnostics (the dict ``suggest`` returns as ``log``)."""
        if self.is_suggestion_logged:
            self._log(_loggable(logs))

    def log_observation(self, logs: Mapping[str, Any]) -> None:
        """Log one observation's row (the dict ``observe`` returns as ``logs``).

        ``observation/output``, ``observation/cost`` and ``observation/is_failure``
        feed the best-so-far value and the performance-cost plot.
        """
        if not self.is_observation_logged:
            return
        row = _loggable(logs)
        failed = bool(logs.get("observation/is_failure", False))
        output = _number(logs.get("observation/output"))
        cost = _number(logs.get("observation/cost"))
        self._observation_count += 1
        if cost is not None:
            self._cumulative_cost += cost
        if not failed and output is not None and cost is not None:
            self._successes.append((cost, output))
            if self._best is None or output * self.better_direction_sign > self._best * self.better_direction_sign:
                self._best = output
        if self._best is not None:
            row.setdefault("best_observation/output", self._best)
        row.setdefault("observation_count", self._observation_count)
        row.setdefault("cumulative_cost", self._cumulative_cost)
        self._log(row)
        every = self.pareto_plot_every
        if every and not failed and self._successes and len(self._successes) % every == 0:
            self.log_pareto_plot(observed_front(self._successes, self.better_direction_sign))

    def log_pareto_plot(
        self,
        pareto_points: Sequence[ParetoPoint] | Sequence[tuple[float, float]],
        observations: Sequence[ObservationInParam] = (),
        step: int | None = None,
    ) -> None:
        """Log the performance-cost plot: observations as dots, the Pareto set as a staircase.

        ``observations`` may be empty, in which case the successful observations
        this logger has seen are drawn. ``step`` (by default the number of
        observations logged so far) is recorded as ``pareto_plot_step``.
        """
        points = [
            (float(o.cost), float(o.output))
            for o in observations
            if not o.is_failure and _number(o.output) is not None
        ] or list(self._successes)
        front = [
            (float(p.cost), float(p.output)) if isinstance(p, ParetoPoint) else (float(p[0]), float(p[1]))
            for p in pareto_points
        ]
        image = self._render(points, front)
        if image is not None:
            at = self._observation_count if step is None else int(step)
            self._log({"pareto_plot": image, "pareto_plot_step": at})

    def finish(self) -> None:
        """Close the run (only if this logger started it)."""
        if self._owns_run:
            self.run.finish()

    # -- standalone use ------------------------------------------------------------------
    def observe(self, observation: ObservationInParam) -> None:
        """Log one finished run given as an ``ObservationInParam``."""
        failed = bool(observation.is_failure) or _number(observation.output) is None
        self.log_observation(
            _observation_row(observation.input, observation.output, observation.cost, failed)
        )

    def log_study(self, study: Study) -> int:
        """Log the finished trials of a carbs ``Study`` not logged yet, in finishing order.

        Call it after every trial or once at the end; returns how many trials
        were logged. Each row also holds the trial's ``trial_number`` and
        ``trial_state``; a PRUNED (stopped early) trial is logged as a failure
        (it has no final result, so it stays out of the best value and the
        Pareto plot). A trial's learning curve follows its row,
        one row per point. Trials lost to an interruption (``is_informative``
        false) are left out.
        """
        new = [
            t
            for t in study.trials()
            if str(t.state) != "RUNNING" and t.is_informative and t.number not in self._study_logged
        ]
        new.sort(key=lambda t: (t.finished_at is None, t.finished_at or t.started_at, t.number))
        curves = study.intermediate_values([t.number for t in new]) if new else {}
        for t in new:
            failed = str(t.state) != "COMPLETE" or _number(t.output) is None
            row = _observation_row(t.params, t.output, t.cost, failed)
            row["trial_number"] = t.number
            row["trial_state"] = str(t.state)
            self.log_observation(row)
            for point in curves.get(t.number, []):
                self._log({
                    "curve/trial_number": t.number,
                    "curve/step": point.step,
                    "curve/value": point.value,
                    "curve/cost": point.cost,
                })
            self._study_logged.add(t.number)
        return len(new)

    def __enter__(self) -> WandbLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    # -- internals ----------------------------------------------------------------------------
    def _log(self, row: dict[str, Any]) -> None:
        # No explicit step: a run passed in (a training run) or resumed by id
        # has its own step counter, and W&B drops rows logged at older steps.
        self.run.log(row)

    def _render(self, points: list[tuple[float, float]], front: list[tuple[float, float]]) -> Any:
        try:
            png = render_png(points, front)
            from PIL import Image
        except ImportError:
            if not self._warned_plot:
                self._warned_plot = True
                logger.warning("the Pareto plot needs matplotlib (%s); skipped", install_command("plot"))
            return None
        return wandb.Image(Image.open(io.BytesIO(png)), caption="Pareto front")


def _observation_row(
    values: Mapping[str, Any], output: Any, cost: Any, failed: bool
) -> dict[str, Any]:
    """The row :meth:`WandbLogger.log_observation` expects, as CARBS itself builds it."""
    row: dict[str, Any] = {
        f"observation/{k}": v for k, v in values.items() if k != SUGGESTION_ID_DICT_KEY
    }
    row["observation/is_failure"] = int(failed)
    if _number(cost) is not None:
        row["observation/cost"] = float(cost)
    if not failed:
        row["observation/output"] = float(output)
    return row


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _loggable(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars and strings as they are; nested dicts flattened with ``/``; the rest as text."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if isinstance(value, Mapping):
            out.update({f"{key}/{k}": v for k, v in _loggable(value).items()})
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif hasattr(value, "item") and callable(value.item):  # numpy scalars
            out[key] = value.item()
        else:
            out[key] = str(value)
    return out
