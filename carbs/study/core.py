"""Studies: a CARBS search whose trials live in a database.

The optimizer state is never stored: every :meth:`Study.ask` rebuilds a
``CARBS`` from the stored trials (finished trials become observations,
RUNNING trials become pending suggestions), so any number of processes on
any number of machines can share one study, and a crash at any moment loses
nothing but the trials that were running.

``ask`` fits the surrogate models on a snapshot of the trials *before* taking
the study's lock; inside it, only candidates are scored, with every trial
started or finished since the snapshot as a pending point, so that the lock
is held for milliseconds and no running point is handed out twice. The
models' hyperparameters are shared through the storage: one process searches
them when the data grew enough, the others reuse them meanwhile.

While other trials run (many workers), ``ask`` first takes a suggestion from
the study's *suggestion pool*: suggestions one process made ahead of time
from one fit, each with the running trials and the others as pending points,
stored with the observation count they were made from. Taking one is a short
transaction with no model work; the pool is refilled in the background by
one process when it runs low or half-way to stale (see ``carbs.study.pool``).
A study asked by one process at a time never uses it.

Example::

    import carbs
    from carbs import Param, LogSpace

    study = carbs.create_study(
        "lr-sweep", storage="sqlite:///sweeps.db",
        params=[Param("lr", LogSpace(min=1e-5, max=1.0), search_center=1e-3)],
        direction="minimize", load_if_exists=True,
    )
    study.optimize(lambda p: train(p["lr"]), n_trials=30)
    print(study.best_trial)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carbs.optimizer.config import CARBSParams
from carbs.optimizer.loop import CARBS
from carbs.optimizer.pareto import pareto_set_from_observations
from carbs.optimizer.space import Param, SearchSpace, SpaceError
from carbs.optimizer.surrogate import REFIT_MIN_OBSERVATIONS, SurrogateHyperparameters
from carbs.optimizer.types import (
    SUGGESTION_ID_DICT_KEY,
    ObservationInParam,
    ParetoPoint,
)
from carbs.stopping import (
    Curve,
    Decision,
    EarlyStopping,
    FinishedRun,
    StoppingReference,
    as_early_stopping,
)
from carbs.storage import (
    FailKind,
    IntermediateValue,
    Storage,
    StudyExistsError,
    StudyNotFoundError,
    StudyRecord,
    TrialRecord,
    TrialState,
    TrialStateError,
    utcnow,
)
from carbs.study.asking import (
    _add_rerun,
    _AskRequest,
    _cost_left,
    _lineage,
    budget_exhausted,
    retry_candidate,
)
from carbs.study.pool import (
    _add_pending,
    _ask_pooled,
    _definition_digest,
    _restore_pending,
    _Snapshot,
    _stale_limit,
    _start_refill,
    _wait_for_refill,
)
from carbs.study.trial import (
    BudgetExhausted,
    ObjectiveResult,
    StudyDefinitionError,
    Trial,
    default_worker_name,
    direction_sign,
    trial_observation,
)
from carbs.sweep_config import Budget, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    import pandas

logger = logging.getLogger(__name__)

__all__ = [
    "PruningSummary",
    "Study",
    "budget_exhausted",
    "create_study",
    "delete_study",
    "load_study",
]

# Times a suggestion equal to a RUNNING trial's point is drawn again.
_DUPLICATE_RETRIES = 8
# A process searching the shared hyperparameters holds the claim this long at most.
_REFIT_CLAIM_SECONDS = 60.0
# Default heartbeat settings of Study.optimize.
_OPTIMIZE_HEARTBEAT_INTERVAL = 10.0
_OPTIMIZE_HEARTBEAT_GRACE = 60.0


def _settings(settings: CARBSParams | Mapping[str, Any] | None, sign: int) -> CARBSParams:
    if settings is None:
        base = CARBSParams()
    elif isinstance(settings, CARBSParams):
        base = CARBSParams.from_dict(settings.to_dict())
    elif isinstance(settings, Mapping):
        base = CARBSParams.from_dict(dict(settings))
    else:
        raise TypeError(f"settings must be a CARBSParams or a dict, got {type(settings).__name__}")
    base.better_direction_sign = sign
    base.validate()
    return base


def _definition_changes(
    record: StudyRecord, params: Sequence[Param], sign: int, metric: str
) -> list[str]:
    changes = []
    new_params = [p.to_dict() for p in params]
    if record.params != new_params:
        old_names = [p["name"] for p in record.params]
        new_names = [p["name"] for p in new_params]
        if old_names != new_names:
            changes.append(f"parameters {old_names} -> {new_names}")
        else:
            changed = [n["name"] for o, n in zip(record.params, new_params) if o != n]
            changes.append(f"search space of {changed}")
    if record.direction != sign:
        word = {1: "maximize", -1: "minimize"}
        changes.append(f"direction {word[record.direction]} -> {word[sign]}")
    if record.metric != metric:
        changes.append(f"metric {record.metric!r} -> {metric!r}")
    return changes


def create_study(
    study_name: str,
    storage: str | Storage | None = None,
    params: Sequence[Param] | None = None,
    direction: str | int = "minimize",
    *,
    metric: str = "objective",
    settings: CARBSParams | Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    load_if_exists: bool = False,
    allow_space_change: bool = False,
    early_stopping: EarlyStopping | Mapping[str, Any] | bool | None = None,
) -> Study:
    """Create a study (or, with ``load_if_exists``, resume the one of that name).

    Args:
        study_name: unique name within the storage.
        storage: a URL, a file path, a ``Storage``, or ``None`` for
            ``$CARBS_STORAGE`` / ``sqlite:///carbs.db``.
        params: the search space.
        direction: ``"minimize"`` or ``"maximize"`` the output.
        metric: the name of the optimised value (used by the sweep runner and displays).
        settings: ``CARBSParams`` (or a dict of them); its direction is overridden
            by ``direction``.
        config: how a sweep runs trials (stored for ``carbs worker``).
        load_if_exists: return the existing study instead of raising ``StudyExistsError``.
        allow_space_change: when loading, accept a different search space,
            direction or metric and store the new one (old trials outside the new
            space are left out of the model).
        early_stopping: turn on the cost-aware stopping rule: an ``EarlyStopping``,
            a dict of its settings, or ``True``/``{}`` for the defaults. Stored
            with the study (in its config), so every worker applies it. ``None``
            keeps what is stored; ``False`` turns it off.

    Raises:
        StudyExistsError: the name is taken and ``load_if_exists`` is false.
        StudyDefinitionError: the existing study differs and ``allow_space_change`` is false.
    """
    if not params:
        raise ValueError(f"params must be a non-empty list of Param, got {params!r}")
    params = list(params)
    for p in params:
        if not isinstance(p, Param):
            raise TypeError(f"params must hold Param objects, got {p!r}")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"params has duplicate names: {names}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be a non-empty string, got {metric!r}")
    sign = direction_sign(direction)
    carbs_params = _settings(settings, sign)
    if early_stopping is not None:
        rule = as_early_stopping(early_stopping)
        config = dict(config or {})
        config["early_stopping"] = rule.to_dict() if rule is not None else None
    store = storage if isinstance(storage, Storage) else Storage(storage)
    try:
        record = store.create_study(
            study_name,
            direction=sign,
            metric=metric,
            params=[p.to_dict() for p in params],
            settings=carbs_params.to_dict(),
            config=dict(config or {}),
        )
        logger.info("created study %r in %s", study_name, store)
        return Study(store, record)
    except StudyExistsError:
        if not load_if_exists:
            raise StudyExistsError(
                f"a study named {study_name!r} exists already in {store}; pass "
                "load_if_exists=True to resume it"
            ) from None
    record = store.get_study(study_name)
    changes = _definition_changes(record, params, sign, metric)
    if changes and not allow_space_change:
        raise StudyDefinitionError(
            f"study {study_name!r} exists with a different definition ("
            + "; ".join(changes)
            + "); use another study name, or allow the change explicitly "
            "(allow_space_change=True, or --allow-space-change on the command line)"
        )
    if changes:
        logger.warning("study %r: changing %s", study_name, "; ".join(changes))
    if config is not None and "early_stopping" not in config and early_stopping is None:
        # A new run config without the key keeps the stopping rule stored before.
        config = dict(config)
        if "early_stopping" in record.config:
            config["early_stopping"] = record.config["early_stopping"]
    record = store.update_study(
        record.id,
        direction=sign,
        metric=metric,
        params=[p.to_dict() for p in params],
        settings=carbs_params.to_dict(),
        config=dict(config) if config is not None else None,
    )
    return Study(store, record)


def load_study(study_name: str | None, storage: str | Storage | None = None) -> Study:
    """Open an existing study. With ``study_name=None`` the storage must hold exactly one."""
    store = storage if isinstance(storage, Storage) else Storage(storage)
    if study_name is None:
        studies = store.list_studies()
        if len(studies) != 1:
            names = [s.name for s in studies]
            raise StudyNotFoundError(
                f"{store} holds {len(studies)} studies {names}; name the one to open"
            )
        return Study(store, studies[0])
    return Study(store, store.get_study(study_name))


def delete_study(study_name: str, storage: str | Storage | None = None) -> None:
    """Delete a study and all its trials."""
    store = storage if isinstance(storage, Storage) else Storage(storage)
    store.delete_study(study_name)


@dataclass(frozen=True)
class PruningSummary:
    """Trials stopped early: how many, the cost they spent, and the cost they saved (estimated)."""

    count: int
    spent: float
    saved: float


def estimate_saved(trials: Sequence[TrialRecord], last_steps: Mapping[int, int]) -> float:
    """Cost the PRUNED trials would have spent had they run to the end, minus what they spent.

    A pruned trial is assumed to run as many steps as the median completed
    trial, at its own cost per step; without step counts, to cost as much as
    the median completed trial.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.cost is not None]
    if not complete:
        return 0.0
    final_steps = sorted(last_steps[t.number] for t in complete if t.number in last_steps)
    costs = sorted(float(t.cost or 0.0) for t in complete)
    median_cost = costs[len(costs) // 2]
    saved = 0.0
    for t in trials:
        if t.state != TrialState.PRUNED or t.cost is None:
            continue
        step = last_steps.get(t.number)
        if final_steps and step:
            full = t.cost * final_steps[len(final_steps) // 2] / step
        else:
            full = median_cost
        saved += max(full - t.cost, 0.0)
    return saved


class Study:
    """A named search stored in a database; build one with :func:`create_study` or :func:`load_study`."""

    def __init__(self, storage: Storage, record: StudyRecord) -> None:
        self.storage = storage
        self._record = record
        self._ask_lock = threading.Lock()
        # ((complete, pruned) counts, rule, reference): the cached stopping reference.
        self._reference: tuple[tuple[int, int], EarlyStopping, StoppingReference] | None = None
        self._reference_lock = threading.Lock()
        # Why should_prune last said "stop", per trial: the default reason of a PRUNED tell.
        self._stop_reasons: dict[int, str] = {}
        # The search space the stopping rule maps points with (built on first use).
        self._search_space: SearchSpace | None = None
        self._snapshot: _Snapshot | None = None
        # The thread refilling the suggestion pool, while one runs.
        self._refill_thread: threading.Thread | None = None
        # Upper-quantile predicted cost of the last suggestion made here (under _ask_lock).
        self._last_cost_upper: float | None = None
        self._last_ask_path: str | None = None

    def __repr__(self) -> str:
        return f"Study({self.name!r}, storage={self.storage.url!r})"

    # -- definition -------------------------------------------------------------
    @property
    def id(self) -> int:
        """Database key of the study."""
        return self._record.id

    @property
    def name(self) -> str:
        """The study's name."""
        return self._record.name

    @property
    def params(self) -> list[Param]:
        """The search space."""
        return [Param.from_dict(d) for d in self._record.params]

    @property
    def better_direction_sign(self) -> int:
        """``1`` if larger outputs are better, ``-1`` if smaller ones are."""
        return self._record.direction

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``."""
        return "maximize" if self._record.direction == 1 else "minimize"

    @property
    def metric(self) -> str:
        """Name of the optimised value."""
        return self._record.metric

    @property
    def settings(self) -> CARBSParams:
        """The optimizer settings."""
        return CARBSParams.from_dict(dict(self._record.settings))

    @property
    def config(self) -> dict[str, Any]:
        """How the sweep runs trials (command, budget, ...), as stored."""
        return dict(self._record.config)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """Free-form attributes of the study."""
        return dict(self._record.user_attrs)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON-compatible attribute on the study."""
        attrs = self.user_attrs
        attrs[key] = value
        self._record = self.storage.update_study(self.id, user_attrs=attrs)

    @property
    def early_stopping(self) -> EarlyStopping | None:
        """The stored stopping rule, or ``None`` when trials are never stopped early."""
        data = self._record.config.get("early_stopping")
        return None if data is None else EarlyStopping.from_dict(data)

    def set_early_stopping(self, early_stopping: EarlyStopping | Mapping[str, Any] | bool | None) -> None:
        """Store a stopping rule (``None``/``False`` turns it off) for every worker of the study."""
        rule = as_early_stopping(early_stopping)
        config = self.config
        config["early_stopping"] = rule.to_dict() if rule is not None else None
        self._record = self.storage.update_study(self.id, config=config)

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Replace the stored sweep configuration."""
        self._record = self.storage.update_study(self.id, config=dict(config))

    def refresh(self) -> None:
        """Reload the definition (another process may have changed it)."""
        self._record = self.storage.get_study(self.name)

    # -- trials -------------------------------------------------------------------
    def trials(self, states: Sequence[TrialState | str] | None = None) -> list[TrialRecord]:
        """Every trial (or those in ``states``), by number."""
        wanted = None if states is None else [TrialState(s) for s in states]
        return self.storage.trials(self.id, wanted)

    def trial(self, number: int) -> TrialRecord:
        """One trial by number."""
        return self.storage.trial(self.id, number)

    def state_counts(self) -> dict[TrialState, int]:
        """How many trials are RUNNING, COMPLETE, FAILED and PRUNED."""
        return self.storage.state_counts(self.id)

    def intermediate_values(
        self, numbers: Sequence[int] | None = None
    ) -> dict[int, list[IntermediateValue]]:
        """Learning curves: trial number -> its intermediate values by step (all trials by default)."""
        return self.storage.intermediate_values(self.id, numbers)

    def pruning_summary(self, trials: Sequence[TrialRecord] | None = None) -> PruningSummary:
        """How many trials were stopped early, what they spent, and an estimate of what they saved."""
        trials = self.trials() if trials is None else trials
        pruned = [t for t in trials if t.state == TrialState.PRUNED]
        if not pruned:
            return PruningSummary(0, 0.0, 0.0)
        steps = self.storage.last_steps(self.id)
        return PruningSummary(
            len(pruned),
            sum(t.cost or 0.0 for t in pruned),
            estimate_saved(trials, steps),
        )

    # -- intermediate reports and early stopping ---------------------------------
    def report(
        self, trial: Trial | int, value: float, step: int, *, cost: float | None = None
    ) -> None:
        """Store a RUNNING trial's metric ``value`` at ``step`` (a point of its learning curve).

        Args:
            trial: the ``Trial`` from :meth:`ask`, or its number.
            value: the metric at this step (same direction as the final output).
            step: an integer >= 0 that increases from one report to the next.
            cost: the cost spent so far, in the unit of the trial's final cost;
                wall-clock seconds since the trial started by default. Pass it
                when your objective returns its own cost (epochs, tokens, ...).

        Raises ``ValueError`` naming the bad field (non-numeric value, a step
        that does not increase) and ``TrialStateError`` if the trial finished.
        """
        number = trial.number if isinstance(trial, Trial) else int(trial)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"trial {number}: intermediate value at step {step!r} must be a finite number, "
                f"got {value!r}"
            )
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"trial {number}: step must be an integer >= 0, got {step!r}")
        if cost is None:
            started = trial.started_at if isinstance(trial, Trial) else self.trial(number).started_at
            cost = max((utcnow() - started).total_seconds(), 1e-6)
        elif isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (
            math.isfinite(cost) and cost >= 0
        ):
            raise ValueError(f"trial {number}: cost at step {step} must be a number >= 0, got {cost!r}")
        self.storage.add_intermediate(self.id, number, [(step, float(value), float(cost))])

    def stopping_reference(self, rule: EarlyStopping) -> StoppingReference:
        """What running trials are judged against now.

        Rebuilt only when a trial has completed or been pruned since the last
        call (one small count query otherwise).
        """
        with self._reference_lock:
            counts = self.state_counts()
            key = (counts[TrialState.COMPLETE], counts[TrialState.PRUNED])
            cached = self._reference
            if cached is not None and cached[0] == key and cached[1] == rule:
                return cached[2]
            trials = self.trials([TrialState.COMPLETE, TrialState.PRUNED])
            curves = self.intermediate_values([t.number for t in trials])
            completed, others = [], []
            for t in trials:
                curve = _curve(curves.get(t.number, []))
                if t.state == TrialState.COMPLETE and t.output is not None and t.cost is not None:
                    completed.append(FinishedRun(t.output, t.cost, curve, self._point(t.params)))
                else:
                    others.append(curve)
            reference = StoppingReference(rule, self.better_direction_sign, completed, others)
            self._reference = (key, rule, reference)
            return reference

    def stop_decision(
        self, trial: Trial | int, early_stopping: EarlyStopping | bool | None = None
    ) -> Decision:
        """The stopping rule's verdict on a RUNNING trial, with its reason.

        Uses ``early_stopping`` if given (``False``: never stop), else the
        study's stored rule; with neither, trials are never stopped.
        """
        if early_stopping is None:
            rule = self.early_stopping
        else:
            rule = as_early_stopping(early_stopping)
        if rule is None:
            return Decision(False, "early stopping is off")
        number = trial.number if isinstance(trial, Trial) else int(trial)
        params = trial.params if isinstance(trial, Trial) else self.trial(number).params
        curve = _curve(self.intermediate_values([number]).get(number, []))
        return self.stopping_reference(rule).decide(curve, self._point(params))

    def _point(self, params: Mapping[str, Any]) -> tuple[float, ...] | None:
        """A trial's point in the optimizer's basic coordinates (for the final-cost estimate
        of the stopping rule); ``None`` if it is outside the current search space."""
        space = self._search_space
        if space is None:
            space = self._search_space = SearchSpace(self.params)
        try:
            values = {k: v for k, v in params.items() if k in space.names}
            return tuple(float(v) for v in space.to_basic(values))
        except (SpaceError, ValueError, KeyError):
            return None

    def should_prune(
        self, trial: Trial | int, early_stopping: EarlyStopping | bool | None = None
    ) -> bool:
        """Whether the stopping rule would stop this trial now (see :meth:`stop_decision`)."""
        decision = self.stop_decision(trial, early_stopping)
        if decision.stop:
            number = trial.number if isinstance(trial, Trial) else int(trial)
            self._stop_reasons[number] = decision.reason
            logger.info("trial %d should stop: %s", number, decision.reason)
        return decision.stop

    def observations(self) -> list[ObservationInParam]:
        """Finished trials as the optimizer sees them, by trial number.

        Failed trials are failures; trials lost to an interruption or a dead
        worker say nothing about their parameters and are left out.
        """
        return [obs for _, obs in self.numbered_observations()]

    def numbered_observations(self) -> list[tuple[int, ObservationInParam]]:
        """:meth:`observations` with the trial number of each."""
        out = []
        for trial in self.trials([TrialState.COMPLETE, TrialState.FAILED]):
            obs = trial_observation(trial)
            if obs is not None:
                out.append((trial.number, obs))
        return out

    def reap_stale_trials(self) -> list[int]:
        """Mark RUNNING trials whose worker stopped heartbeating FAILED(stale)."""
        return self.storage.reap_stale(self.id)

    def build_optimizer(self, trials: Sequence[TrialRecord] | None = None) -> CARBS:
        """A ``CARBS`` holding the study's finished trials, with RUNNING ones pending."""
        if trials is None:
            trials = self.trials()
        params = self.params
        opt = CARBS(self.settings, params)
        space = opt.search_space
        observations = []
        for trial in trials:
            obs = trial_observation(trial)
            if obs is None:
                continue
            try:
                space.to_basic(obs.input)
            except SpaceError as e:
                logger.warning("trial %d left out of the model: %s", trial.number, e)
                continue
            observations.append(obs)
        if observations:
            # Keep the user's center, so that a rebuilt optimizer behaves like
            # one that saw the trials one by one.
            opt.initialize_from_observations(observations, recenter=False)
        _restore_pending(opt, trials, lambda t: t.state == TrialState.RUNNING)
        return opt

    def _take_snapshot(self, trials: Sequence[TrialRecord] | None = None) -> _Snapshot:
        """Outside the study lock: an optimizer of the trials as they are now (or of
        ``trials``, just read), fitted."""
        if trials is None:
            trials = self.trials()
        observed = frozenset(t.number for t in trials if trial_observation(t) is not None)
        with self._ask_lock:
            cached = self._snapshot
        if cached is not None and cached.observed == observed:
            return cached  # nothing finished since: the fitted models still hold
        opt = self.build_optimizer(trials)
        searched = self._share_hyperparameters(opt)
        try:
            opt.fit_surrogates()
        except Exception as e:  # the suggestion falls back on its own; do not fail the ask here
            logger.debug("study %r: surrogates could not be fitted (%s)", self.name, e)
        hp = opt.surrogate_hyperparameters
        if searched and hp is not None:
            self.storage.save_model_cache(self.id, hp.observation_count, hp.to_dict())
        snapshot = _Snapshot(opt, observed)
        with self._ask_lock:
            self._snapshot = snapshot
        return snapshot

    def wait_for_pool_refill(self, timeout: float | None = None) -> bool:
        """Wait until this process's refill of the suggestion pool (if any) is done; ``False`` on timeout."""
        return _wait_for_refill(self, timeout)

    def _share_hyperparameters(self, opt: CARBS) -> bool:
        """Give ``opt`` the study's shared hyperparameters; ``True`` if this process must
        search new ones (and save them) because they are missing or too old."""
        n = opt.observation_count
        if len(opt.complete_observations) < opt.config.num_random_samples or n < REFIT_MIN_OBSERVATIONS:
            return False  # no model yet, or one cheap enough that every fit searches anew
        while True:
            cached, claimed_at = self.storage.model_cache_and_claim(self.id)
            hp: SurrogateHyperparameters | None = None
            if cached is not None:
                try:
                    hp = SurrogateHyperparameters.from_dict(cached[1])
                except ValueError as e:
                    logger.warning("study %r: ignoring the stored model cache: %s", self.name, e)
            if hp is not None and hp.dim != opt.real_dim:
                hp = None
            if hp is not None and hp.reusable_for(n, opt.real_dim):
                opt.surrogate_hyperparameters = hp
                return False
            claimed = claimed_at is not None and (utcnow() - claimed_at).total_seconds() < _REFIT_CLAIM_SECONDS
            if not claimed and self.storage.claim_model_refit(self.id, _REFIT_CLAIM_SECONDS):
                return True
            if hp is not None:
                # Another process is searching: the older ones serve until it saves.
                opt.surrogate_hyperparameters = dataclasses.replace(hp, observation_count=n)
                return False
            # None to use yet: wait for the searching process (one cheap read a
            # second; a crashed one's claim expires and is taken over).
            time.sleep(1.0)

    def _snapshot_view(
        self, snapshot: _Snapshot, trials: list[TrialRecord], pool: Sequence[Mapping[str, Any]] = ()
    ) -> CARBS | None:
        """Inside the lock: the snapshot's optimizer with every RUNNING trial, every trial
        finished since the snapshot and the ``pool``'s points as pending; ``None`` if the
        snapshot is too old to use."""
        current = {t.number for t in trials if trial_observation(t) is not None}
        if not snapshot.observed <= current:
            return None
        new = current - snapshot.observed
        if len(new) > _stale_limit(len(snapshot.observed)):
            return None
        opt = snapshot.optimizer
        opt.outstanding_suggestions = {}
        _restore_pending(opt, trials, lambda t: t.state == TrialState.RUNNING or t.number in new)
        _add_pending(opt, pool, "pool")
        return opt

    def _suggest(
        self,
        trials: list[TrialRecord],
        cost_left: float | None = None,
        opt: CARBS | None = None,
        pool: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[dict[str, Any], str | None]:
        if opt is None:
            opt = self.build_optimizer(trials)
            _add_pending(opt, pool, "pool")
        opt.set_cost_budget(cost_left)
        # Points running or waiting in the pool are not handed out again.
        taken = [t.params for t in trials if t.state == TrialState.RUNNING] + [dict(p) for p in pool]
        for _ in range(_DUPLICATE_RETRIES):
            out = opt.suggest()
            params = {k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
            if params not in taken:
                break
            logger.debug("suggestion %s is running or pooled already; drawing again", params)
        kind = out.log.get("suggestion_kind")
        upper = out.log.get("suggestion_meta/cost_upper_estimate")
        self._last_cost_upper = None if upper is None else float(upper)
        return params, str(kind) if kind is not None else None

    def ask(
        self,
        *,
        worker: str | None = None,
        heartbeat_grace: float | None = None,
        budget: Budget | None = None,
        cost_left: float | None = None,
        retries: RetryPolicy | None = None,
        job: str | None = None,
    ) -> Trial:
        """Choose the next point, store it as a RUNNING trial and return it.

        Args:
            worker: who runs it (``host:pid`` by default).
            heartbeat_grace: if set, the trial is declared FAILED(stale) when no
                :meth:`heartbeat` arrives for this many seconds.
            budget: a study-wide budget (trials and cost); when it is spent,
                ``BudgetExhausted`` is raised instead.
            cost_left: the caller's own cost budget left (``optimize(max_cost=...)``).
                With it or a cost budget, the point is never predicted to cost
                more than ``CARBSParams.max_budget_fraction`` of what is left.
            retries: re-run the point of a trial lost to the infrastructure (or,
                per the policy, failed) before asking the optimizer for a new one.
            job: the launcher job running it (``slurm:1234``), kept with the trial.

        While other trials are running, the point is taken from the study's
        suggestion pool when it holds a usable one (made by one process for
        many asks, see :mod:`carbs.study.pool`): a short transaction, no model
        work. Otherwise the models are fitted before taking the study's lock;
        inside it, every RUNNING trial (and every trial finished meanwhile) is
        a pending suggestion of the optimizer, so two calls never hand out the
        same point while it is running. A study asked by one process at a time
        never uses the pool: it suggests from all its data, as it always did.
        """
        request = _AskRequest(
            self._definition(), worker or default_worker_name(), heartbeat_grace, budget, cost_left,
            retries, job,
        )
        pooled, path = _ask_pooled(self, request)
        if pooled.reason is not None:
            raise BudgetExhausted(pooled.reason)
        record = pooled.record
        if record is None:
            record = self._ask_models(request)
            path = "scored under the lock"
        # How the last ask was served (read by the load benchmark).
        self._last_ask_path = path
        if pooled.refill_due:
            _start_refill(self, request)
        logger.debug("study %r: trial %d handed to %s", self.name, record.number, request.worker)
        return self._trial(record)

    def _definition(self) -> str:
        """A digest of what makes suggestions valid: the space, the direction and the settings."""
        record = self._record
        return _definition_digest(record.params, record.direction, record.settings)

    def _ask_models(self, request: _AskRequest) -> TrialRecord:
        """The models' suggestion for this ask alone: fitted outside the lock, scored inside."""
        budget = request.budget
        snapshot: _Snapshot | None = None

        def pick(locked: Any) -> tuple[TrialRecord | None, str | None]:
            locked.set_asking_since(None)  # this ask is no longer under way
            locked.reap_stale()
            trials = locked.trials()
            reason = budget_exhausted(trials, budget)
            if reason is not None:
                return None, reason
            again = retry_candidate(trials, request.retries)
            if again is not None:
                return _add_rerun(locked, again, request), None
            pool = []
            if any(t.state == TrialState.RUNNING for t in trials):
                # Pooled suggestions will be handed out too: steer away from them.
                pool = [p.params for p in locked.pooled_suggestions() if p.definition == request.definition]
            opt = None if snapshot is None else self._snapshot_view(snapshot, trials, pool)
            if opt is None and snapshot is not None:
                return None, None  # too much finished since the snapshot: take another
            params, kind = self._suggest(trials, _cost_left(trials, budget, request.cost_left), opt, pool)
            record = locked.add_trial(
                params, worker=request.worker, heartbeat_grace=request.heartbeat_grace,
                suggestion_kind=kind, job=request.job,
            )
            return record, None

        for attempt in range(3):
            # The last attempt fits inside the lock: slow, but it always succeeds.
            snapshot = self._take_snapshot() if attempt < 2 else None
            with self._ask_lock:
                record, reason = self.storage.locked_study(self.id, pick)
            if record is not None or reason is not None:
                break
        if record is None:
            raise BudgetExhausted(reason or "budget spent")
        return record

    def _trial(self, record: TrialRecord) -> Trial:
        lineage, attempt = record.number, 0
        if record.retry_of is not None:
            by_number = {t.number: t for t in self.trials()}
            by_number[record.number] = record
            lineage, attempt = _lineage(by_number, record.number)
        return Trial(
            record.number,
            dict(record.params),
            self.name,
            record.started_at,
            self,
            retry_of=record.retry_of,
            lineage=lineage,
            attempt=attempt,
        )

    def mark_lost(self, trial: Trial | int, reason: str) -> TrialRecord | None:
        """Mark a RUNNING trial FAILED(lost): its node or job went away. ``None`` if it had ended."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        record = self.trial(number)
        if record.state != TrialState.RUNNING:
            return None
        try:
            return self.storage.finish_trial(
                self.id,
                number,
                state=TrialState.FAILED,
                cost=max((utcnow() - record.started_at).total_seconds(), 1e-6),
                fail_kind=FailKind.LOST,
                fail_reason=reason,
            )
        except TrialStateError:  # it ended meanwhile: its own result stands
            return None

    def heartbeat(self, trial: Trial | int) -> bool:
        """Tell the storage a trial's worker is alive; ``False`` if the trial is no longer RUNNING."""
        number = trial.number if isinstance(trial, Trial) else int(trial)
        return self.storage.heartbeat(self.id, number)

    def tell(
        self,
        trial: Trial | int,
        output: float | None = None,
        cost: float | None = None,
        failed: bool = False,
        *,
        reason: str | None = None,
        fail_kind: FailKind | str | None = None,
        stderr_tail: str | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        pruned: bool = False,
    ) -> TrialRecord:
        """Record the result of a RUNNING trial.

        Args:
            trial: the ``Trial`` from :meth:`ask`, or its number.
            output: the metric; a missing or non-finite output makes the trial FAILED.
            cost: what the trial cost; defaults to the wall-clock seconds since it
                was handed out.
            failed: the trial did not complete.
            reason: why it failed (stored and shown).
            fail_kind: a ``FailKind`` (default ``REPORTED`` for ``failed=True``).
            stderr_tail: the last lines of the program's standard error.
            user_attrs: extra JSON-compatible values to keep with the trial.
            pruned: the trial was stopped early: it is stored as PRUNED, with
                ``output`` and ``cost`` defaulting to its last intermediate value
                and the cost reported with it; ``reason`` says why it stopped.
        """
        number = trial.number if isinstance(trial, Trial) else int(trial)
        if pruned and not failed and fail_kind is None:
            return self._tell_pruned(number, trial, output, cost, reason, user_attrs)
        if cost is None:
            started = trial.started_at if isinstance(trial, Trial) else self.trial(number).started_at
            cost = max((utcnow() - started).total_seconds(), 1e-6)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost):
            raise ValueError(f"trial {number}: cost must be a finite number, got {cost!r}")
        if cost <= 0:
            raise ValueError(f"trial {number}: cost must be > 0, got {cost!r}")
        kind = FailKind(fail_kind) if fail_kind is not None else None
        if not failed and kind is None:
            if output is None or isinstance(output, bool) or not isinstance(output, (int, float)):
                failed, kind = True, FailKind.BAD_OUTPUT
                reason = reason or f"output must be a number, got {output!r}"
                output = None
            elif not math.isfinite(output):
                failed, kind = True, FailKind.BAD_OUTPUT
                reason = reason or f"output is not finite: {output!r}"
                output = None
        if kind is not None:
            failed = True
        if failed:
            kind = kind or FailKind.REPORTED
            if output is not None and (
                isinstance(output, bool)
                or not isinstance(output, (int, float))
                or not math.isfinite(output)
            ):
                output = None
        return self.storage.finish_trial(
            self.id,
            number,
            state=TrialState.FAILED if failed else TrialState.COMPLETE,
            output=None if output is None else float(output),
            cost=float(cost),
            fail_kind=kind,
            fail_reason=reason if failed else None,
            stderr_tail=stderr_tail,
            user_attrs=dict(user_attrs) if user_attrs else None,
        )

    def _tell_pruned(
        self,
        number: int,
        trial: Trial | int,
        output: float | None,
        cost: float | None,
        reason: str | None,
        user_attrs: Mapping[str, Any] | None,
    ) -> TrialRecord:
        curve = self.intermediate_values([number]).get(number, [])
        if output is None and curve:
            output = curve[-1].value
        if output is not None and (
            isinstance(output, bool) or not isinstance(output, (int, float)) or not math.isfinite(output)
        ):
            raise ValueError(f"trial {number}: output of a pruned trial must be finite, got {output!r}")
        if cost is None:
            if curve and curve[-1].cost > 0:
                cost = curve[-1].cost
            else:
                started = trial.started_at if isinstance(trial, Trial) else self.trial(number).started_at
                cost = max((utcnow() - started).total_seconds(), 1e-6)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (
            math.isfinite(cost) and cost > 0
        ):
            raise ValueError(f"trial {number}: cost must be a finite number > 0, got {cost!r}")
        return self.storage.finish_trial(
            self.id,
            number,
            state=TrialState.PRUNED,
            output=None if output is None else float(output),
            cost=float(cost),
            fail_reason=reason or self._stop_reasons.pop(number, "stopped early"),
            user_attrs=dict(user_attrs) if user_attrs else None,
        )

    # -- results ----------------------------------------------------------------
    @property
    def best_trial(self) -> TrialRecord:
        """The COMPLETE trial with the best output (ties: the cheaper, then the earlier).

        Raises ``ValueError`` when no trial has completed yet.
        """
        complete = [t for t in self.trials([TrialState.COMPLETE]) if t.output is not None]
        if not complete:
            raise ValueError(f"study {self.name!r} has no COMPLETE trial yet")
        sign = self.better_direction_sign
        return min(
            complete, key=lambda t: (-sign * float(t.output or 0.0), t.cost or 0.0, t.number)
        )

    def pareto_front(self) -> list[ParetoPoint]:
        """The output-versus-cost Pareto set of the finished trials, cheapest first."""
        observations = self.observations()
        if not any(not o.is_failure for o in observations):
            return []
        settings = self.settings
        return pareto_set_from_observations(
            observations,
            self.params,
            self.better_direction_sign,
            min_pareto_cost_fraction=settings.min_pareto_cost_fraction,
            is_conservative=settings.is_pareto_group_selection_conservative,
        )

    def trials_dataframe(self) -> pandas.DataFrame:
        """The trials as a ``pandas.DataFrame`` (needs ``pandas``), one row per trial."""
        from carbs.study.export import trials_dataframe

        return trials_dataframe(self.trials())

    def export(self, path: str | os.PathLike[str], format: str | None = None) -> None:
        """Write the trials to ``path`` as CSV or JSON (chosen from the extension by default)."""
        from carbs.study.export import export_trials

        export_trials(self, os.fspath(path), format)

    # -- in-process optimisation ---------------------------------------------------
    def optimize(
        self,
        objective: Callable[[dict[str, Any]], ObjectiveResult],
        n_trials: int | None = None,
        max_cost: float | None = None,
        timeout: float | None = None,
        n_workers: int = 1,
        *,
        catch: tuple[type[BaseException], ...] = (Exception,),
        heartbeat_grace: float | None = _OPTIMIZE_HEARTBEAT_GRACE,
        callbacks: Sequence[Callable[[Study, TrialRecord], None]] = (),
        early_stopping: EarlyStopping | Mapping[str, Any] | bool | None = None,
    ) -> None:
        """Run ``objective`` on suggested points until a limit is reached.

        Args:
            objective: called with a dict of parameter values; returns the output,
                or ``(output, cost)``. Without a cost, wall-clock seconds are used.
            n_trials: trials to run in this call.
            max_cost: stop handing out trials once this call's trials cost this much.
            timeout: stop handing out trials after this many seconds.
            n_workers: trials run at once, in threads (for objectives that release
                the GIL or wait on other processes).
            catch: exceptions that mark the trial FAILED and continue; others
                mark it FAILED and propagate.
            heartbeat_grace: trials of a process that dies are declared stale
                after this many seconds (``None``: never).
            callbacks: called with ``(study, finished_trial)`` after each trial.
            early_stopping: the stopping rule for this call's trials (an
                ``EarlyStopping``, a dict, ``True`` for the defaults, ``False``
                for none); ``None`` uses the study's stored rule. The objective reports with
                ``carbs.current_trial().report(value, step)`` (or
                ``carbs.report(step=..., <metric>=...)``), asks
                ``trial.should_prune()`` and raises ``carbs.TrialPruned`` to stop.

        With no limit at all the loop runs until interrupted (Ctrl-C), which
        marks the running trials FAILED as interrupted.
        """
        from carbs.study.optimize import run_objective

        run_objective(
            self,
            objective,
            n_trials=n_trials,
            max_cost=max_cost,
            timeout=timeout,
            n_workers=n_workers,
            catch=catch,
            heartbeat_grace=heartbeat_grace,
            heartbeat_interval=(
                min(_OPTIMIZE_HEARTBEAT_INTERVAL, heartbeat_grace / 4)
                if heartbeat_grace is not None
                else None
            ),
            callbacks=callbacks,
            early_stopping=(
                early_stopping if isinstance(early_stopping, (bool, type(None)))
                else as_early_stopping(early_stopping)
            ),
        )


def _curve(points: Sequence[IntermediateValue]) -> Curve:
    return Curve(tuple(p.cost for p in points), tuple(p.value for p in points))
