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
one process when it runs low or half-way to stale. A study asked by one
process at a time never uses it.

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

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
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
    SuggestionInBasic,
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
    PooledSuggestion,
    Storage,
    StudyExistsError,
    StudyNotFoundError,
    StudyRecord,
    TrialRecord,
    TrialState,
    TrialStateError,
    utcnow,
)
from carbs.study.trial import (
    BudgetExhausted,
    ObjectiveResult,
    StudyDefinitionError,
    Trial,
    default_worker_name,
    direction_sign,
)
from carbs.study.trial import trial_observation as _as_observation
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
# Trials finished since an ask's snapshot that its models may treat as pending
# (beyond, the snapshot is taken again): this many, or this share of the observations.
_STALE_TRIALS = 16
_STALE_SHARE = 0.1
# The suggestion pool (see Study.ask): a process holds the claim of its refill
# this long at most; it writes the suggestions it makes in chunks of this many,
# so that askers need not wait for the whole batch; the pool holds about one
# suggestion per RUNNING trial, within these bounds.
_POOL_CLAIM_SECONDS = 60.0
_POOL_CHUNKS = (2, 4, 8)  # the first chunks are small: askers are waiting for them
_POOL_MIN = 8
_POOL_MAX = 64
_POOL_ROUNDS = 4  # fits one refill makes at most before it lets another process claim
# An ask that finds the pool empty while another process fills it waits for
# it (reading the pool's size every 0.2 s at first, every second at most)
# while the pool grows, this long at most, and suggests alone once it has
# not grown for _POOL_STALL_SECONDS (the filling process may be stuck or starved).
_POOL_WAIT_SECONDS = 20.0
_POOL_STALL_SECONDS = 10.0
_POOL_POLL_SECONDS = (0.2, 1.0)
# Orders the rows concurrent asks try first (its own generator: the caller's
# global random state is left alone).
_CHOICE_ORDER = random.Random()
# An ask begun while no trial ran, and not finished since this long, is gone.
_ASKING_SECONDS = 30.0
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


def _lineage(trials_by_number: Mapping[int, TrialRecord], number: int) -> tuple[int, int]:
    """(first trial of the point, attempt) of trial ``number`` by following ``retry_of``."""
    attempt, seen = 0, set()
    trial = trials_by_number.get(number)
    while trial is not None and trial.retry_of is not None and trial.number not in seen:
        seen.add(trial.number)
        attempt += 1
        number = trial.retry_of
        trial = trials_by_number.get(number)
    return number, attempt


def _add_rerun(
    locked: Any, again: TrialRecord, worker: str, heartbeat_grace: float | None, job: str | None
) -> TrialRecord:
    """Inside the study lock: add the trial that runs ``again``'s point once more (its lineage kept)."""
    record: TrialRecord = locked.add_trial(
        dict(again.params),
        worker=worker,
        heartbeat_grace=heartbeat_grace,
        suggestion_kind="retry",
        retry_of=again.number,
        job=job,
    )
    logger.info("trial %d re-runs trial %d (%s)", record.number, again.number, again.fail_kind)
    return record


def retry_candidate(trials: Sequence[TrialRecord], policy: RetryPolicy | None) -> TrialRecord | None:
    """The oldest failed trial that the policy re-runs and that nobody re-ran yet."""
    if policy is None or policy.max_retries <= 0:
        return None
    by_number = {t.number: t for t in trials}
    retried = {t.retry_of for t in trials if t.retry_of is not None}
    for trial in trials:
        if (
            trial.state == TrialState.FAILED
            and trial.fail_kind is not None
            and trial.fail_kind.value in policy.on
            and trial.number not in retried
            and _lineage(by_number, trial.number)[1] < policy.max_retries
        ):
            return trial
    return None


def budget_exhausted(trials: Sequence[TrialRecord], budget: Budget | None) -> str | None:
    """Why a study-wide budget is spent (trials or cost), or ``None`` if it is not."""
    if budget is None:
        return None
    used = sum(1 for t in trials if t.state == TrialState.RUNNING or t.is_informative)
    return _budget_reason(used, sum(t.cost for t in trials if t.cost is not None), budget)


def _budget_reason(used: int, spent: float, budget: Budget) -> str | None:
    """:func:`budget_exhausted` from the counted trials and the summed cost."""
    if budget.max_trials is not None and used >= budget.max_trials:
        whole = "; the budget counts the whole study, earlier runs included" if used > budget.max_trials else ""
        return f"trial budget reached ({used}/{budget.max_trials} trials{whole})"
    if budget.max_cost is not None and spent >= budget.max_cost:
        whole = "; the budget counts the whole study, earlier runs included" if spent > budget.max_cost else ""
        return f"cost budget reached ({spent:.6g}/{budget.max_cost:.6g}{whole})"
    return None


def _cost_left(trials: Sequence[TrialRecord], budget: Budget | None, cost_left: float | None) -> float | None:
    """The smaller of the study's cost budget left and the caller's (``None`` without either)."""
    return _cost_left_of(sum(t.cost for t in trials if t.cost is not None), budget, cost_left)


def _cost_left_of(spent: float, budget: Budget | None, cost_left: float | None) -> float | None:
    """:func:`_cost_left` from the summed cost of the study's trials."""
    left = [] if cost_left is None else [cost_left]
    if budget is not None and budget.max_cost is not None:
        left.append(budget.max_cost - spent)
    return min(left) if left else None


def _stale_limit(basis: int) -> float:
    """Observations that may arrive after models saw ``basis`` before their use is too stale."""
    return max(_STALE_TRIALS, _STALE_SHARE * basis)


def _is_stale(basis: int, observations: int) -> bool:
    """Whether a suggestion made from ``basis`` observations is too old when there are ``observations``."""
    return observations < basis or observations - basis > _stale_limit(basis)


def _pool_size(running: int) -> int:
    """How many suggestions a refill brings the pool to with ``running`` trials in flight."""
    return min(_POOL_MAX, max(_POOL_MIN, running))


@dataclass
class _PoolPick:
    """What the pooled part of an ask found: a trial (or why none), and the pool's state."""

    record: TrialRecord | None = None
    reason: str | None = None
    # Other workers are asking or running trials: the pool is used and kept filled.
    concurrent: bool = False
    running: int = 0  # RUNNING trials, the new one included
    left: int = 0  # usable suggestions left in the pool
    unusable: int = 0  # fresh suggestions over this caller's cost cap
    age: int = 0  # observations since the newest usable suggestion was made
    observations: int = 0

    @property
    def refill_due(self) -> bool:
        """Whether the pool should be refilled now: the study is asked concurrently,
        and its pool is short of suggestions or half-way to stale."""
        if not self.concurrent:
            return False
        low = self.left < max(2, _pool_size(self.running) // 2)
        return low or 2 * self.age > _stale_limit(self.observations - self.age)


@dataclass
class _Snapshot:
    """An optimizer built from the trials as they were, its surrogates fitted."""

    optimizer: CARBS
    observed: frozenset[int]  # numbers of the trials it holds as observations


def _definition_digest(params: Any, direction: int, settings: Any) -> str:
    """A digest of a study's space, direction and settings (pooled suggestions are made for one)."""
    text = json.dumps([params, direction, settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _add_pending(opt: CARBS, points: Sequence[Mapping[str, Any]], prefix: str) -> None:
    """Make ``points`` (parameter dicts) pending suggestions of ``opt``; those outside its space are left out."""
    for i, point in enumerate(points):
        try:
            basic = opt.search_space.to_basic(dict(point))
        except SpaceError:
            continue
        opt.outstanding_suggestions[f"{prefix}-{i}"] = SuggestionInBasic(basic)


def _private_copy(opt: CARBS) -> CARBS:
    """A copy of a fitted optimizer that another thread can suggest from while ``opt`` is used.

    The observations are shared (neither copy changes them); the fitted
    models are copied, since conditioning on pending points changes them.
    """
    with opt._lock:
        twin = copy.copy(opt)  # through __getstate__: a lock of its own, no fit cache
        twin._fit_cache = copy.deepcopy(opt._fit_cache)
    twin.outstanding_suggestions = {}
    return twin


def _restore_pending(
    opt: CARBS, trials: Sequence[TrialRecord], is_pending: Callable[[TrialRecord], bool]
) -> None:
    """Make the trials ``is_pending`` selects pending suggestions of ``opt``, and set its counters.

    The counters continue the optimizer's random stream and resample schedule
    where a long-lived optimizer would be after handing out these trials.
    Trials whose parameters no longer fit the space are left out.
    """
    space = opt.search_space
    for trial in trials:
        if not is_pending(trial):
            continue
        try:
            basic = space.to_basic(trial.params)
        except SpaceError:
            continue
        opt.outstanding_suggestions[f"trial-{trial.number}"] = SuggestionInBasic(basic)
    opt.suggestion_count = len(trials)
    opt.resample_count = sum(1 for t in trials if t.suggestion_kind == "resample")


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
            obs = _as_observation(trial)
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
            obs = _as_observation(trial)
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
        observed = frozenset(t.number for t in trials if _as_observation(t) is not None)
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

    def _start_refill(self, definition: str, budget: Budget | None, cost_left: float | None) -> None:
        """Refill the suggestion pool in a background thread, so that this ask returns at once.

        The caller's trial is stored already; the refill runs while it does.
        A process that exits meanwhile leaves what was stored so far, and its
        claim expires after ``_POOL_CLAIM_SECONDS``.
        """
        with self._ask_lock:
            if self._refill_thread is not None and self._refill_thread.is_alive():
                return

            def run() -> None:
                try:
                    self._refill_pool(definition, budget, cost_left)
                except Exception as e:  # the trials are stored: a failed refill only costs speed
                    logger.warning("study %r: the suggestion pool was not refilled: %s", self.name, e)

            thread = threading.Thread(target=run, name=f"carbs-pool-{self.name}", daemon=True)
            self._refill_thread = thread
        thread.start()

    def wait_for_pool_refill(self, timeout: float | None = None) -> bool:
        """Wait until this process's refill of the suggestion pool (if any) is done; ``False`` on timeout."""
        thread = self._refill_thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _refill_pool(self, definition: str, budget: Budget | None, cost_left: float | None) -> None:
        """Fill the study's suggestion pool for the next asks, if no other process is doing it.

        Outside the study lock: one snapshot's models make the suggestions one
        after the other, each with the RUNNING trials, the pool's other
        suggestions and the ones before it pending (so that they spread out as
        a batch does), under this caller's cost caps (each ask checks its own
        again). They are stored in chunks, with the observation count they
        were made from, so that askers can take the first ones at once.
        """
        if not self.storage.claim_pool_refill(self.id, _POOL_CLAIM_SECONDS):
            return
        try:
            stored = self.storage.get_study(self.name)
            if _definition_digest(stored.params, stored.direction, stored.settings) != definition:
                return  # this process's definition is out of date: leave the pool to others
            # While asks keep the pool short, go on with models fitted anew each
            # time the trials finished meanwhile make the last ones stale.
            for _ in range(_POOL_ROUNDS):
                trials = self.trials()
                snapshot = self._take_snapshot(trials)
                basis = len(snapshot.observed)
                finished = sum(1 for t in trials if t.state != TrialState.RUNNING)
                kept: list[PooledSuggestion] = []
                gone: list[PooledSuggestion] = []
                for p in self.storage.pooled_suggestions(self.id):
                    ok = p.definition == definition and not _is_stale(p.basis, basis)
                    (kept if ok else gone).append(p)
                self.storage.drop_suggestions(self.id, [p.id for p in gone])
                left = _cost_left(trials, budget, cost_left)
                # Continue the random stream and the resample schedule past the
                # trials and the pooled suggestions that will become trials.
                counts = (
                    len(trials) + len(kept),
                    sum(1 for t in trials if t.suggestion_kind == "resample")
                    + sum(1 for p in kept if p.suggestion_kind == "resample"),
                )
                opt = _private_copy(snapshot.optimizer)
                _restore_pending(opt, trials, lambda t: t.state == TrialState.RUNNING)
                _add_pending(opt, [p.params for p in kept], "pool")
                opt.suggestion_count, opt.resample_count = counts
                opt.set_cost_budget(left)
                made = 0
                stale = False
                for i in range(4 * _POOL_MAX):  # a bound; the pool is full long before
                    # The target follows the trials in flight, which grow as
                    # waiting askers take the first suggestions.
                    rows, _ = self.storage.pool_state(self.id)
                    states = self.storage.state_counts(self.id)
                    done = sum(n for state, n in states.items() if state != TrialState.RUNNING)
                    wanted = _pool_size(states[TrialState.RUNNING]) - rows
                    if wanted <= 0:
                        break
                    if _is_stale(finished, done):
                        stale = True  # the models are too old now: fit anew and go on
                        break
                    chunk: list[tuple[dict[str, Any], str | None, float | None]] = []
                    for _ in range(min(_POOL_CHUNKS[min(i, len(_POOL_CHUNKS) - 1)], wanted)):
                        out = opt.suggest()  # remembered: the next ones steer away from it
                        params = {k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
                        kind = out.log.get("suggestion_kind")
                        upper = out.log.get("suggestion_meta/cost_upper_estimate")
                        chunk.append((params, None if kind is None else str(kind),
                                      None if upper is None else float(upper)))
                    self.storage.add_suggestions(self.id, definition, basis, chunk)
                    self.storage.claim_pool_refill(self.id, 0.0)  # still at it: renew the claim
                    made += len(chunk)
                logger.debug("study %r: %d suggestions pooled from %d observations", self.name, made, basis)
                if not stale:
                    break
        finally:
            self.storage.release_pool_claim(self.id)

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
        current = {t.number for t in trials if _as_observation(t) is not None}
        if not snapshot.observed <= current:
            return None
        new = current - snapshot.observed
        if len(new) > max(_STALE_TRIALS, _STALE_SHARE * len(snapshot.observed)):
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
        running = [t.params for t in trials if t.state == TrialState.RUNNING]
        for _ in range(_DUPLICATE_RETRIES):
            out = opt.suggest()
            params = {k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
            if params not in running:
                break
            logger.debug("suggestion %s is already running; drawing again", params)
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
        many asks, see :meth:`_refill_pool`): a short transaction, no model
        work. Otherwise the models are fitted before taking the study's lock;
        inside it, every RUNNING trial (and every trial finished meanwhile) is
        a pending suggestion of the optimizer, so two calls never hand out the
        same point while it is running. A study asked by one process at a time
        never uses the pool: it suggests from all its data, as it always did.
        """
        worker = worker or default_worker_name()
        definition = self._definition()

        def pop() -> _PoolPick:
            fast = self._pop_fast(definition, worker, heartbeat_grace, budget, cost_left, retries, job)
            if fast is not None:
                return fast
            return self.storage.locked_study(
                self.id,
                lambda locked: self._pick_pooled(
                    locked, definition, worker, heartbeat_grace, budget, cost_left, retries, job
                ),
            )

        pooled = pop()
        path = "pool"
        if pooled.record is None and pooled.reason is None and pooled.concurrent and not pooled.unusable:
            # Other workers ask too and the pool is empty: one process fills it
            # (perhaps this one, in the background) and this ask takes the
            # first suggestion it stores, rather than fitting models of its own.
            self._start_refill(definition, budget, cost_left)
            pooled = self._wait_for_pool(pop, pooled, (definition, budget, cost_left))
            path = "pool after waiting"
            if pooled.record is None and pooled.reason is None and pooled.concurrent and not pooled.unusable:
                pooled = self._ask_own(definition, worker, heartbeat_grace, budget, cost_left, retries, job)
                path = "own, outside the lock"
        if pooled.reason is not None:
            raise BudgetExhausted(pooled.reason)
        record = pooled.record
        if record is None:
            record = self._ask_models(definition, worker, heartbeat_grace, budget, cost_left, retries, job)
            path = "scored under the lock"
        # How the last ask was served (read by the load benchmark).
        self._last_ask_path = path
        if pooled.refill_due:
            self._start_refill(definition, budget, cost_left)
        logger.debug("study %r: trial %d handed to %s", self.name, record.number, worker)
        return self._trial(record)

    def _ask_own(
        self,
        definition: str,
        worker: str,
        heartbeat_grace: float | None,
        budget: Budget | None,
        cost_left: float | None,
        retries: RetryPolicy | None,
        job: str | None,
    ) -> _PoolPick:
        """A suggestion of this ask's own, made entirely outside the study lock, then
        stored in a short locked transaction (as a pooled one would be).

        It sees the trials running when it read them, those finished since its
        snapshot and the pool as pending, not those started while it was made:
        the same staleness a pooled suggestion has. Inside the lock it is checked against every running
        point and the caller's cost cap; if it fails, the ask suggests under
        the lock instead.
        """
        trials = self.trials()
        snapshot = self._take_snapshot(trials)
        pool = [p.params for p in self.storage.pooled_suggestions(self.id) if p.definition == definition]
        with self._ask_lock:
            opt = self._snapshot_view(snapshot, trials, pool)
            if opt is None:  # much finished since its snapshot was taken: suggest under the lock
                return _PoolPick()
            params, kind = self._suggest(trials, _cost_left(trials, budget, cost_left), opt)
            own = (params, kind, self._last_cost_upper)
        return self.storage.locked_study(
            self.id,
            lambda locked: self._pick_pooled(
                locked, definition, worker, heartbeat_grace, budget, cost_left, retries, job, own
            ),
        )

    def _wait_for_pool(
        self, pop: Callable[[], _PoolPick], pooled: _PoolPick, refill: tuple[str, Budget | None, float | None]
    ) -> _PoolPick:
        """Wait while another process fills the empty pool, then take a suggestion from it.

        Returns the last pick: without a trial when nobody fills the pool, when
        what it holds does not suit this caller, or after ``_POOL_WAIT_SECONDS``.
        """
        start = time.monotonic()
        progress, seen = start, -1
        interval = _POOL_POLL_SECONDS[0]
        while time.monotonic() - start < _POOL_WAIT_SECONDS and time.monotonic() - progress < _POOL_STALL_SECONDS:
            time.sleep(interval)
            interval = min(interval * 1.5, _POOL_POLL_SECONDS[1])
            rows, claimed_at = self.storage.pool_state(self.id)
            own = self._refill_thread
            filling = (own is not None and own.is_alive()) or (
                claimed_at is not None and (utcnow() - claimed_at).total_seconds() < _POOL_CLAIM_SECONDS
            )
            if rows != seen:
                progress, seen = time.monotonic(), rows
            if rows == 0:
                if filling:
                    continue
                # The refill ended (its models went stale): start the next one.
                self._start_refill(*refill)
                continue
            pooled = pop()
            if pooled.record is not None or pooled.reason is not None or not pooled.concurrent:
                return pooled
            if pooled.unusable or not filling:
                return pooled  # what it holds is not for this caller, and nothing else is coming
            # Other askers took what was there: wait for the next chunk.
            interval = _POOL_POLL_SECONDS[0]
        return pooled

    def _definition(self) -> str:
        """A digest of what makes suggestions valid: the space, the direction and the settings."""
        record = self._record
        return _definition_digest(record.params, record.direction, record.settings)

    def _pop_fast(
        self,
        definition: str,
        worker: str,
        heartbeat_grace: float | None,
        budget: Budget | None,
        cost_left: float | None,
        retries: RetryPolicy | None,
        job: str | None,
    ) -> _PoolPick | None:
        """A pooled suggestion chosen from a read made without the study lock, then stored
        under it with one delete and one insert (see ``Storage.take_suggestion``).

        ``None`` when the full locked pick is needed: no trial is running, a
        budget or a retry policy applies, or a running trial's heartbeat is
        overdue (the locked pick reaps it).
        """
        if budget is not None or (retries is not None and retries.max_retries > 0):
            return None
        for _ in range(3):  # asks taking the same rows at once: read again
            pick = self._pop_fast_once(definition, worker, heartbeat_grace, cost_left, job)
            if pick is None or pick.record is not None or pick.left == 0:
                return pick
        return pick

    def _pop_fast_once(
        self,
        definition: str,
        worker: str,
        heartbeat_grace: float | None,
        cost_left: float | None,
        job: str | None,
    ) -> _PoolPick | None:
        """One attempt of :meth:`_pop_fast`."""
        running, rows, observations = self.storage.pool_snapshot(self.id)
        if not running:
            return None
        now = utcnow()
        for t in running:
            last = t.heartbeat_at or t.started_at
            if t.heartbeat_grace is not None and (now - last).total_seconds() > t.heartbeat_grace:
                return None
        cap = None if cost_left is None else max(cost_left, 0.0) * self.settings.max_budget_fraction
        points = [t.params for t in running]
        drop: list[int] = []
        usable = []
        unusable = 0
        for row in rows:
            if row.definition != definition:
                continue  # this process may be the one out of date: leave them
            if _is_stale(row.basis, observations) or row.params in points:
                drop.append(row.id)
            elif cap is not None and (row.cost_upper is None or row.cost_upper > cap):
                unusable += 1
            else:
                usable.append(row)
        self.storage.drop_suggestions(self.id, drop)
        record = None
        if usable:
            # A few choices among the oldest, in a random order, so that asks
            # reading the pool at the same moment mostly try different rows.
            choices = usable[:16]
            _CHOICE_ORDER.shuffle(choices)
            record = self.storage.take_suggestion(
                self.id, choices[:4], worker=worker, heartbeat_grace=heartbeat_grace, job=job
            )
        newest = max((row.basis for row in usable), default=observations)
        return _PoolPick(
            record=record,
            concurrent=True,
            running=len(running) + (record is not None),
            left=max(len(usable) - 1, 0) if record is not None else len(usable),
            unusable=unusable,
            age=observations - newest,
            observations=observations,
        )

    def _pick_pooled(
        self,
        locked: Any,
        definition: str,
        worker: str,
        heartbeat_grace: float | None,
        budget: Budget | None,
        cost_left: float | None,
        retries: RetryPolicy | None,
        job: str | None,
        own: tuple[dict[str, Any], str | None, float | None] | None = None,
    ) -> _PoolPick:
        """Inside the study lock, without reading every trial: the budget, a retry, or a
        pooled suggestion (``own``, if given) that is fresh, within the cost caps and not
        a running point."""
        locked.reap_stale()
        running = locked.running_trials()
        spent = 0.0
        if budget is not None:
            used, spent = locked.budget_usage()
            reason = _budget_reason(used, spent, budget)
            if reason is not None:
                return _PoolPick(reason=reason)
        if retries is not None and retries.max_retries > 0:
            again = retry_candidate(locked.retry_trials(), retries)
            if again is not None:
                return _PoolPick(record=_add_rerun(locked, again, worker, heartbeat_grace, job))
        if not running:
            since = locked.asking_since
            if since is None or (utcnow() - since).total_seconds() > _ASKING_SECONDS:
                # Asked one at a time (so far): the models suggest from all the
                # data, as for a single worker, and the ask says it is under way.
                locked.set_asking_since(utcnow())
                return _PoolPick()
        study = locked.study
        if _definition_digest(study.params, study.direction, study.settings) != definition:
            return _PoolPick()  # this process's definition is out of date: no pool
        left = _cost_left_of(spent, budget, cost_left)
        cap = None if left is None else max(left, 0.0) * self.settings.max_budget_fraction
        points = [t.params for t in running]
        if own is not None:
            params, kind, upper = own
            if params in points or (cap is not None and (upper is None or upper > cap)):
                return _PoolPick()  # suggest under the lock instead
            record = locked.add_trial(
                dict(params), worker=worker, heartbeat_grace=heartbeat_grace, suggestion_kind=kind, job=job
            )
            return _PoolPick(record=record, concurrent=True, running=len(running) + 1)
        rows, count = locked.pool_and_observations()
        observations = count or 0
        drop: list[int] = []
        chosen = None
        usable = unusable = 0
        newest = None
        for row in rows:
            if row.definition != definition or _is_stale(row.basis, observations) or row.params in points:
                drop.append(row.id)
                continue
            if cap is not None and (row.cost_upper is None or row.cost_upper > cap):
                unusable += 1
                continue  # over this caller's budget; another may take it
            newest = row.basis if newest is None else max(newest, row.basis)
            if chosen is None:
                chosen = row
            else:
                usable += 1
        record = None
        if chosen is not None:
            drop.append(chosen.id)
        locked.remove_suggestions(drop)
        if chosen is not None:
            record = locked.add_trial(
                dict(chosen.params),
                worker=worker,
                heartbeat_grace=heartbeat_grace,
                suggestion_kind=chosen.suggestion_kind,
                job=job,
            )
        return _PoolPick(
            record=record,
            concurrent=True,
            running=len(running) + (record is not None),
            left=usable,
            unusable=unusable,
            age=observations - (newest if newest is not None else observations),
            observations=observations,
        )

    def _ask_models(
        self,
        definition: str,
        worker: str,
        heartbeat_grace: float | None,
        budget: Budget | None,
        cost_left: float | None,
        retries: RetryPolicy | None,
        job: str | None,
    ) -> TrialRecord:
        """The models' suggestion for this ask alone: fitted outside the lock, scored inside."""
        snapshot: _Snapshot | None = None

        def pick(locked: Any) -> tuple[TrialRecord | None, str | None]:
            locked.set_asking_since(None)  # this ask is no longer under way
            locked.reap_stale()
            trials = locked.trials()
            reason = budget_exhausted(trials, budget)
            if reason is not None:
                return None, reason
            again = retry_candidate(trials, retries)
            if again is not None:
                return _add_rerun(locked, again, worker, heartbeat_grace, job), None
            pool = []
            if any(t.state == TrialState.RUNNING for t in trials):
                # Pooled suggestions will be handed out too: steer away from them.
                pool = [p.params for p in locked.pooled_suggestions() if p.definition == definition]
            opt = None if snapshot is None else self._snapshot_view(snapshot, trials, pool)
            if opt is None and snapshot is not None:
                return None, None  # too much finished since the snapshot: take another
            params, kind = self._suggest(trials, _cost_left(trials, budget, cost_left), opt, pool)
            record = locked.add_trial(
                params, worker=worker, heartbeat_grace=heartbeat_grace, suggestion_kind=kind, job=job
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
