"""The suggestion pool: suggestions made ahead of time for the asks of many workers.

When many workers ask one study at once, fitting the models for every ask
would cost each about 0.1 s of CPU. So one process fits them once and stores
a batch of suggestions (each made with the running trials and the others as
pending points, and with the observation count it was made from); an ask
then takes one in a short transaction, with no model work. A study asked by
one process at a time never uses the pool.

The functions take the :class:`~carbs.study.core.Study` they serve, through
:class:`PoolOwner`: ``core`` imports this module, never the reverse.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from carbs.optimizer.config import CARBSParams
from carbs.optimizer.loop import CARBS
from carbs.optimizer.space import SpaceError
from carbs.optimizer.types import SUGGESTION_ID_DICT_KEY, SuggestionInBasic
from carbs.storage import PooledSuggestion, PoolSnapshot, TrialRecord, TrialState, utcnow
from carbs.study.asking import (
    _add_rerun,
    _AskRequest,
    _budget_reason,
    _cost_left,
    _cost_left_of,
    retry_candidate,
)

if TYPE_CHECKING:  # pragma: no cover
    from carbs.storage import Storage

logger = logging.getLogger(__name__)

# Trials finished since an ask's snapshot that its models may treat as pending
# (beyond, the snapshot is taken again): this many, or this share of the observations.
_STALE_TRIALS = 16
_STALE_SHARE = 0.1
# The suggestion pool (see Study.ask): a process holds the claim of its refill
# this long at most; it writes the suggestions it makes in chunks of this many,
# so that askers need not wait for the whole batch; the pool holds about one
# suggestion per RUNNING trial, within these bounds.
_POOL_CLAIM_SECONDS = 60.0
_POOL_CHUNKS = (4, 8, 16, 32)  # the first chunks are small: askers are waiting for them
_POOL_MIN = 8
_POOL_MAX = 64
_POOL_ROUNDS = 4  # fits one refill makes at most before it lets another process claim
# An ask that finds the pool empty while another process fills it waits for
# it (reading the pool's size every 0.2 s at first, every 0.5 s at most, each
# time at a random 0.5-1.5 times that, so that waiting asks spread their reads)
# while the pool grows, this long at most, and suggests alone once it has
# not grown for _POOL_STALL_SECONDS (the filling process may be stuck or starved).
_POOL_WAIT_SECONDS = 20.0
_POOL_STALL_SECONDS = 10.0
_POOL_POLL_SECONDS = (0.2, 0.5)
# Orders the rows concurrent asks try first (its own generator: the caller's
# global random state is left alone).
_CHOICE_ORDER = random.Random()
# An ask begun while no trial ran, and not finished since this long, is gone.
_ASKING_SECONDS = 30.0


def _stale_limit(basis: int) -> float:
    """Observations that may arrive after models saw ``basis`` before their use is too stale."""
    return max(_STALE_TRIALS, _STALE_SHARE * basis)


def _is_stale(basis: int, observations: int) -> bool:
    """Whether a suggestion made from ``basis`` observations is too old when there are ``observations``."""
    return observations < basis or observations - basis > _stale_limit(basis)


def _others_asking(snap: PoolSnapshot) -> bool:
    """Whether a pool snapshot shows other asks under way: one made while no trial
    ran, or a refill of the pool (each set only while the study is asked concurrently)."""
    now = utcnow()
    asking = snap.asking_since is not None and (now - snap.asking_since).total_seconds() <= _ASKING_SECONDS
    filling = snap.claimed_at is not None and (now - snap.claimed_at).total_seconds() < _POOL_CLAIM_SECONDS
    return asking or filling


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
    claimed: bool = False  # the pick claimed the pool's refill for this process

    @property
    def empty(self) -> bool:
        """Whether the pool had nothing for this concurrent ask: no trial, no budget
        reason, and no fresh suggestion kept back by the caller's cost cap."""
        return self.record is None and self.reason is None and self.concurrent and not self.unusable

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


class PoolOwner(Protocol):
    """What the pool uses of its study (``carbs.study.Study`` has it)."""

    storage: Storage
    # The thread refilling the pool in this process, while one runs.
    _refill_thread: threading.Thread | None
    # Upper-quantile predicted cost of the last suggestion made (under _ask_lock).
    _last_cost_upper: float | None

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> CARBSParams: ...
    @property
    def _ask_lock(self) -> threading.Lock: ...
    def trials(self) -> list[TrialRecord]: ...
    def _take_snapshot(self, trials: Sequence[TrialRecord] | None = None) -> _Snapshot: ...
    def _snapshot_view(
        self, snapshot: _Snapshot, trials: list[TrialRecord], pool: Sequence[Mapping[str, Any]] = ()
    ) -> CARBS | None: ...
    def _suggest(
        self,
        trials: list[TrialRecord],
        cost_left: float | None = None,
        opt: CARBS | None = None,
        pool: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[dict[str, Any], str | None]: ...


def _definition_digest(params: Any, direction: int, settings: Any) -> str:
    """A digest of a study's space, direction and settings (pooled suggestions are made for one)."""
    text = json.dumps([params, direction, settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _add_pending(opt: CARBS, points: Sequence[Mapping[str, Any]], prefix: str) -> None:
    """Make the pooled ``points`` (parameter dicts) pending suggestions of ``opt``; those
    outside its space are left out.

    They will become trials, so ``opt``'s random stream continues past them (as it
    does past the trials handed out): a draw must not repeat one of them.
    """
    for i, point in enumerate(points):
        try:
            basic = opt.search_space.to_basic(dict(point))
        except SpaceError:
            continue
        opt.outstanding_suggestions[f"{prefix}-{i}"] = SuggestionInBasic(basic)
        opt.suggestion_count += 1


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


def _ask_pooled(study: PoolOwner, request: _AskRequest) -> tuple[_PoolPick, str]:
    """The pooled part of :meth:`Study.ask`: a trial from the pool (or why none), and
    how it was served. A pick without a trial leaves the ask to the models."""

    def pop(waiting: bool = False) -> _PoolPick:
        fast = _pop_fast(study, request, waiting)
        if fast is not None:
            return fast
        return study.storage.locked_study(
            study.id, lambda locked: _pick_pooled(study, locked, request)
        )

    pooled = pop()
    path = "pool"
    if pooled.empty:
        # Other workers ask too and the pool is empty: one process fills it
        # (perhaps this one, in the background) and this ask takes the
        # first suggestion it stores, rather than fitting models of its own.
        _start_refill(study, request, pooled.claimed)
        pooled = _wait_for_pool(study, request, lambda: pop(waiting=True), pooled)
        path = "pool after waiting"
        if pooled.empty:
            pooled = _ask_own(study, request)
            path = "own, outside the lock"
    return pooled, path


def _start_refill(study: PoolOwner, request: _AskRequest, claimed: bool = False) -> None:
    """Refill the suggestion pool in a background thread, so that this ask returns at once.

    The caller's trial is stored already; the refill runs while it does.
    A process that exits meanwhile leaves what was stored so far, and its
    claim expires after ``_POOL_CLAIM_SECONDS``. ``claimed``: the caller's
    pick holds the claim already.
    """
    with study._ask_lock:
        if study._refill_thread is not None and study._refill_thread.is_alive():
            return

        def run() -> None:
            try:
                _refill_pool(study, request, claimed)
            except Exception as e:  # the trials are stored: a failed refill only costs speed
                logger.warning("study %r: the suggestion pool was not refilled: %s", study.name, e)

        thread = threading.Thread(target=run, name=f"carbs-pool-{study.name}", daemon=True)
        study._refill_thread = thread
    thread.start()


def _wait_for_refill(study: PoolOwner, timeout: float | None = None) -> bool:
    """Wait until this process's refill of the suggestion pool (if any) is done; ``False`` on timeout."""
    thread = study._refill_thread
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()


def _refill_pool(study: PoolOwner, request: _AskRequest, claimed: bool = False) -> None:
    """Fill the study's suggestion pool for the next asks, if no other process is doing it.

    Outside the study lock: one snapshot's models make the suggestions one
    after the other, each with the RUNNING trials, the pool's other
    suggestions and the ones before it pending (so that they spread out as
    a batch does), under this caller's cost caps (each ask checks its own
    again). They are stored in chunks, with the observation count they
    were made from, so that askers can take the first ones at once.
    """
    storage, definition = study.storage, request.definition
    if not claimed:
        _, claimed_at = storage.pool_state(study.id)
        if claimed_at is not None and (utcnow() - claimed_at).total_seconds() < _POOL_CLAIM_SECONDS:
            return  # another process is at it: a read tells, rather than a write that queues
        if not storage.claim_pool_refill(study.id, _POOL_CLAIM_SECONDS):
            return
    try:
        stored = storage.get_study(study.name)
        if _definition_digest(stored.params, stored.direction, stored.settings) != definition:
            return  # this process's definition is out of date: leave the pool to others
        # While asks keep the pool short, go on with models fitted anew each
        # time the trials finished meanwhile make the last ones stale.
        for _ in range(_POOL_ROUNDS):
            trials = study.trials()
            snapshot = study._take_snapshot(trials)
            basis = len(snapshot.observed)
            finished = sum(1 for t in trials if t.state != TrialState.RUNNING)
            kept: list[PooledSuggestion] = []
            gone: list[PooledSuggestion] = []
            for p in storage.pooled_suggestions(study.id):
                ok = p.definition == definition and not _is_stale(p.basis, basis)
                (kept if ok else gone).append(p)
            storage.drop_suggestions(study.id, [p.id for p in gone])
            left = _cost_left(trials, request.budget, request.cost_left)
            # Continue the random stream and the resample schedule past the
            # trials and the pooled suggestions that will become trials.
            opt = _private_copy(snapshot.optimizer)
            _restore_pending(opt, trials, lambda t: t.state == TrialState.RUNNING)
            _add_pending(opt, [p.params for p in kept], "pool")
            opt.resample_count += sum(1 for p in kept if p.suggestion_kind == "resample")
            opt.set_cost_budget(left)
            made = 0
            stale = False
            for i in range(4 * _POOL_MAX):  # a bound; the pool is full long before
                # The target follows the trials in flight, which grow as
                # waiting askers take the first suggestions.
                rows, _ = storage.pool_state(study.id)
                states = storage.state_counts(study.id)
                done = sum(n for state, n in states.items() if state != TrialState.RUNNING)
                wanted = _pool_size(states[TrialState.RUNNING]) - rows
                size = _POOL_CHUNKS[min(i, len(_POOL_CHUNKS) - 1)]
                if made and rows == 0:
                    # What was stored is gone already: askers are waiting for more.
                    wanted = max(wanted, size)
                if wanted <= 0:
                    break
                if _is_stale(finished, done):
                    stale = True  # the models are too old now: fit anew and go on
                    break
                chunk: list[tuple[dict[str, Any], str | None, float | None]] = []
                # One batch: each suggestion pending for the next ones, at a fraction of the cost.
                for out in opt.suggest_batch(min(size, wanted)):
                    params = {k: v for k, v in out.suggestion.items() if k != SUGGESTION_ID_DICT_KEY}
                    kind = out.log.get("suggestion_kind")
                    upper = out.log.get("suggestion_meta/cost_upper_estimate")
                    chunk.append((params, None if kind is None else str(kind),
                                  None if upper is None else float(upper)))
                storage.add_suggestions(study.id, definition, basis, chunk)
                storage.claim_pool_refill(study.id, 0.0)  # still at it: renew the claim
                made += len(chunk)
            logger.debug("study %r: %d suggestions pooled from %d observations", study.name, made, basis)
            if not stale:
                break
    finally:
        storage.release_pool_claim(study.id)


def _ask_own(study: PoolOwner, request: _AskRequest) -> _PoolPick:
    """A suggestion of this ask's own, made entirely outside the study lock, then
    stored in a short locked transaction (as a pooled one would be).

    It sees the trials running when it read them, those finished since its
    snapshot and the pool as pending, not those started while it was made:
    the same staleness a pooled suggestion has. Inside the lock it is checked against every running
    point and the caller's cost cap; if it fails, the ask suggests under
    the lock instead.
    """
    trials = study.trials()
    snapshot = study._take_snapshot(trials)
    pool = [
        p.params for p in study.storage.pooled_suggestions(study.id) if p.definition == request.definition
    ]
    with study._ask_lock:
        opt = study._snapshot_view(snapshot, trials, pool)
        if opt is None:  # much finished since its snapshot was taken: suggest under the lock
            return _PoolPick()
        params, kind = study._suggest(trials, _cost_left(trials, request.budget, request.cost_left), opt, pool)
        own = (params, kind, study._last_cost_upper)
    return study.storage.locked_study(
        study.id, lambda locked: _pick_pooled(study, locked, request, own)
    )


def _wait_for_pool(
    study: PoolOwner, request: _AskRequest, pop: Callable[[], _PoolPick], pooled: _PoolPick
) -> _PoolPick:
    """Wait while another process fills the empty pool, then take a suggestion from it.

    Returns the last pick: without a trial when nobody fills the pool, when
    what it holds does not suit this caller, or after ``_POOL_WAIT_SECONDS``.
    """
    start = time.monotonic()
    progress, seen = start, -1
    interval = _POOL_POLL_SECONDS[0]
    while time.monotonic() - start < _POOL_WAIT_SECONDS and time.monotonic() - progress < _POOL_STALL_SECONDS:
        time.sleep(interval * _CHOICE_ORDER.uniform(0.5, 1.5))
        interval = min(interval * 1.5, _POOL_POLL_SECONDS[1])
        rows, claimed_at = study.storage.pool_state(study.id)
        own = study._refill_thread
        filling = (own is not None and own.is_alive()) or (
            claimed_at is not None and (utcnow() - claimed_at).total_seconds() < _POOL_CLAIM_SECONDS
        )
        if rows != seen:
            progress, seen = time.monotonic(), rows
        if rows == 0:
            if filling:
                continue
            # The refill ended (its models went stale): start the next one.
            _start_refill(study, request)
            continue
        pooled = pop()
        if pooled.record is not None or pooled.reason is not None or not pooled.concurrent:
            return pooled
        if pooled.unusable:
            return pooled  # what it holds is not for this caller
        # Other askers took what was there: wait for the next chunk (or, if
        # the refill has stopped, start the next one once the pool is empty).
    return pooled


def _pop_fast(study: PoolOwner, request: _AskRequest, waiting: bool = False) -> _PoolPick | None:
    """A pooled suggestion chosen from a read made without the study lock, then stored
    under it with one delete and one insert (see ``Storage.take_suggestion``).

    ``None`` when the full locked pick is needed: no trial is running and no
    other ask is under way (the study may be asked one at a time), a budget
    or a retry policy applies, or a running trial's heartbeat is overdue (the
    locked pick reaps it). An ask ``waiting`` for the pool has made these
    checks already: it reads the pool alone (the insert itself checks that no
    RUNNING trial has the same point).
    """
    if request.budget is not None or (request.retries is not None and request.retries.max_retries > 0):
        return None
    for _ in range(3):  # asks taking the same rows at once: read again
        pick = _pop_fast_once(study, request, waiting)
        if pick is None or pick.record is not None or pick.left == 0:
            return pick
    return pick


def _pop_fast_once(study: PoolOwner, request: _AskRequest, waiting: bool = False) -> _PoolPick | None:
    """One attempt of :func:`_pop_fast`."""
    snap = study.storage.pool_snapshot(study.id, with_running=not waiting)
    running, rows, observations = snap.running, snap.rows, snap.observations
    if not running and not waiting and not _others_asking(snap):
        return None
    now = utcnow()
    for t in running:
        last = t.heartbeat_at or t.started_at
        if t.heartbeat_grace is not None and (now - last).total_seconds() > t.heartbeat_grace:
            return None
    cost_left = request.cost_left
    cap = None if cost_left is None else max(cost_left, 0.0) * study.settings.max_budget_fraction
    points = [t.params for t in running]
    drop: list[int] = []
    usable = []
    unusable = 0
    for row in rows:
        if row.definition != request.definition:
            continue  # this process may be the one out of date: leave them
        if _is_stale(row.basis, observations) or row.params in points:
            drop.append(row.id)
        elif cap is not None and (row.cost_upper is None or row.cost_upper > cap):
            unusable += 1
        else:
            usable.append(row)
    study.storage.drop_suggestions(study.id, drop)
    record = None
    if usable:
        # A few choices at random, so that asks reading the pool at the same
        # moment (a burst of them, when many workers start) mostly try different rows.
        choices = _CHOICE_ORDER.sample(usable, min(4, len(usable)))
        record = study.storage.take_suggestion(
            study.id, choices, worker=request.worker, heartbeat_grace=request.heartbeat_grace,
            job=request.job,
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
    study: PoolOwner,
    locked: Any,
    request: _AskRequest,
    own: tuple[dict[str, Any], str | None, float | None] | None = None,
) -> _PoolPick:
    """Inside the study lock, without reading every trial: the budget, a retry, or a
    pooled suggestion (``own``, if given) that is fresh, within the cost caps and not
    a running point."""
    budget, retries = request.budget, request.retries
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
            return _PoolPick(record=_add_rerun(locked, again, request))
    if not running:
        since = locked.asking_since
        if since is None or (utcnow() - since).total_seconds() > _ASKING_SECONDS:
            # Asked one at a time (so far): the models suggest from all the
            # data, as for a single worker, and the ask says it is under way.
            locked.set_asking_since(utcnow())
            return _PoolPick()
    stored = locked.study
    if _definition_digest(stored.params, stored.direction, stored.settings) != request.definition:
        return _PoolPick()  # this process's definition is out of date: no pool
    left = _cost_left_of(spent, budget, request.cost_left)
    cap = None if left is None else max(left, 0.0) * study.settings.max_budget_fraction
    points = [t.params for t in running]
    if own is not None:
        params, kind, upper = own
        if params in points or (cap is not None and (upper is None or upper > cap)):
            return _PoolPick()  # suggest under the lock instead
        record = locked.add_trial(
            dict(params), worker=request.worker, heartbeat_grace=request.heartbeat_grace,
            suggestion_kind=kind, job=request.job,
        )
        return _PoolPick(record=record, concurrent=True, running=len(running) + 1)
    rows, count = locked.pool_and_observations()
    observations = count or 0
    drop: list[int] = []
    chosen = None
    usable = unusable = 0
    newest = None
    for row in rows:
        if row.definition != request.definition or _is_stale(row.basis, observations) or row.params in points:
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
    claimed = False
    if chosen is not None:
        drop.append(chosen.id)
    elif not unusable:
        # Nothing to take: claim the refill here, where the study lock is held
        # already, rather than with a write that would queue behind other asks.
        claimed = locked.claim_pool_refill(_POOL_CLAIM_SECONDS)
    locked.remove_suggestions(drop)
    if chosen is not None:
        record = locked.add_trial(
            dict(chosen.params),
            worker=request.worker,
            heartbeat_grace=request.heartbeat_grace,
            suggestion_kind=chosen.suggestion_kind,
            job=request.job,
        )
    return _PoolPick(
        record=record,
        concurrent=True,
        running=len(running) + (record is not None),
        left=usable,
        unusable=unusable,
        age=observations - (newest if newest is not None else observations),
        observations=observations,
        claimed=claimed,
    )
