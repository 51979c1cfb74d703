"""The suggestion pool: suggestions made ahead of time by one process for many asks.

On SQLite and (with CARBS_TEST_POSTGRES_URL) PostgreSQL.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from _storage_urls import as_written_by_schema
from sqlalchemy import inspect, text

import carbs.study.pool as pool_module
from benchmarks.reliability.load import PARAMS, objective
from carbs import LinearSpace, Param
from carbs.storage import SCHEMA_VERSION, Storage, TrialState, dispose_engines
from carbs.study import Study, create_study, load_study
from carbs.sweep_config import Budget

MODEL_SETTINGS = {"num_random_samples": 4, "num_candidates_for_suggestion_per_dim": 10}



def _finish(study: Study, n: int, start: int = 0) -> None:
    """Store ``n`` COMPLETE trials at fixed points, without the optimizer."""
    for i in range(start, start + n):
        params = {"x": -0.9 + 1.8 * ((i * 7) % 97) / 97, "lr": 10 ** (-4 + 4 * ((i * 13) % 89) / 89)}
        record = study.storage.locked_study(
            study.id, lambda locked, p=params: locked.add_trial(p, suggestion_kind="random")
        )
        output, cost = objective(params)
        study.storage.finish_trial(study.id, record.number, state=TrialState.COMPLETE, output=output, cost=cost)


def _running(study: Study, n: int) -> list[int]:
    """Store ``n`` RUNNING trials at fixed points (other workers' trials in flight)."""
    numbers = []
    for i in range(n):
        params = {"x": 0.05 * i, "lr": 0.5}
        record = study.storage.locked_study(study.id, lambda locked, p=params: locked.add_trial(p))
        numbers.append(record.number)
    return numbers


def _fill(study: Study, n: int, basis: int, cost_upper: float | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Put ``n`` distinct suggestions made from ``basis`` observations in the study's pool."""
    points = [{"x": round(-0.5 + (offset + i) / 1000, 6), "lr": 0.001} for i in range(n)]
    study.storage.add_suggestions(
        study.id, study._definition(), basis, [(p, "model", cost_upper) for p in points]
    )
    return points


def _pool_worker(url: str, n: int, barrier: Any, out: Any) -> None:
    try:
        study = load_study("s", url)
        barrier.wait(timeout=120)
        handed = [json.dumps(study.ask().params, sort_keys=True) for _ in range(n)]
        out.put(handed)
    except Exception as e:  # reported to the parent, which fails the test
        out.put(f"{type(e).__name__}: {e}")


def test_no_pooled_suggestion_is_handed_out_twice_across_processes(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 30)
    _running(study, 4)
    pooled = {json.dumps(p, sort_keys=True) for p in _fill(study, 60, basis=30)}
    dispose_engines()  # forked children must not share pooled connections
    ctx = multiprocessing.get_context("fork")
    processes, asks = 5, 6
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_pool_worker, args=(url, asks, barrier, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors
    handed = [h for r in results for h in r]
    assert len(handed) == processes * asks
    # The pool held enough fresh suggestions for every ask: each came from it, once.
    assert set(handed) <= pooled and len(set(handed)) == len(handed)
    left = {json.dumps(p.params, sort_keys=True) for p in study.storage.pooled_suggestions(study.id)}
    assert not left & set(handed)
    assert len(left & pooled) == len(pooled) - len(handed)
    stored = [json.dumps(t.params, sort_keys=True) for t in study.trials([TrialState.RUNNING])]
    assert len(set(stored)) == len(stored) == 4 + len(handed)


def test_a_study_asked_by_one_process_at_a_time_never_uses_the_pool(tmp_path: Path) -> None:
    # The same trials in two storages, one with a pool left over from a
    # concurrent run: with nothing else running, both suggest the same points.
    plain = create_study("s", f"sqlite:///{tmp_path}/a.db", params=PARAMS, settings=MODEL_SETTINGS)
    pooled = create_study("s", f"sqlite:///{tmp_path}/b.db", params=PARAMS, settings=MODEL_SETTINGS)
    for study in (plain, pooled):
        _finish(study, 20)
    _fill(pooled, 10, basis=20)
    for _ in range(4):
        a, b = plain.ask(), pooled.ask()
        assert a.params == b.params
        plain.tell(a, *objective(a.params))
        pooled.tell(b, *objective(b.params))
    assert len(pooled.storage.pooled_suggestions(pooled.id)) == 10


def test_a_stale_pool_is_dropped_and_refilled(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 40)
    _running(study, 3)
    old = {json.dumps(p, sort_keys=True) for p in _fill(study, 10, basis=20)}  # 20 observations ago
    trial = study.ask()
    assert json.dumps(trial.params, sort_keys=True) not in old
    assert study.wait_for_pool_refill(120)
    rows = study.storage.pooled_suggestions(study.id)
    assert rows, "the ask refilled the pool"
    assert {r.basis for r in rows} == {40}
    assert not {json.dumps(r.params, sort_keys=True) for r in rows} & old
    # Filled to one per trial in flight (at least _POOL_MIN), less what the ask took.
    assert pool_module._pool_size(4) - 1 <= len(rows) <= pool_module._pool_size(4)
    # The next ask takes one of the oldest fresh suggestions.
    nxt = study.ask()
    assert nxt.params in [r.params for r in rows[:16]]


def test_a_pool_made_for_another_definition_is_not_used(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 20)
    _running(study, 2)
    points = _fill(study, 5, basis=20)
    changed = create_study("s", url, params=PARAMS, settings={**MODEL_SETTINGS, "max_suggestion_cost": 1.5},
                           load_if_exists=True)
    trial = changed.ask()
    assert trial.params not in points
    assert changed.wait_for_pool_refill(120)
    assert all(p.params not in points for p in changed.storage.pooled_suggestions(changed.id))


def test_cost_caps_hold_for_pooled_suggestions(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 20)
    _running(study, 2)
    dear = _fill(study, 3, basis=20, cost_upper=10.0)
    unknown = _fill(study, 3, basis=20, cost_upper=None, offset=10)
    cheap = _fill(study, 3, basis=20, cost_upper=0.2, offset=20)
    # max_budget_fraction 0.25 of a cost of 1.0 left: a cap of 0.25.
    first = study.ask(cost_left=1.0).params
    spent = sum(t.cost or 0.0 for t in study.trials())
    second = study.ask(budget=Budget(max_cost=spent + 1.0)).params
    assert first in cheap and second in cheap and first != second
    left = [p.params for p in study.storage.pooled_suggestions(study.id)]
    assert all(p in left for p in dear + unknown)
    # Without a cap any pooled suggestion may be taken.
    assert study.ask().params in dear + unknown + cheap


def test_a_pooled_point_equal_to_a_running_one_is_not_handed_out(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 20)
    _running(study, 2)
    first, second = _fill(study, 2, basis=20)
    study.storage.locked_study(study.id, lambda locked: locked.add_trial(dict(first)))
    trial = study.ask()
    assert trial.params == second
    assert study.wait_for_pool_refill(120)
    running = [t.params for t in study.trials([TrialState.RUNNING])]
    assert running.count(first) == 1


def test_pool_refill_claim(url: str) -> None:
    study = create_study("s", url, params=PARAMS)
    storage = study.storage
    assert storage.claim_pool_refill(study.id, ttl=60.0)
    assert not storage.claim_pool_refill(study.id, ttl=60.0)
    assert storage.claim_pool_refill(study.id, ttl=0.0)  # an expired claim is taken over
    storage.release_pool_claim(study.id)
    assert storage.claim_pool_refill(study.id, ttl=60.0)
    _fill(study, 3, basis=0)
    storage.delete_study("s")
    again = create_study("s", url, params=PARAMS)
    assert storage.pooled_suggestions(again.id) == []


def test_asks_return_before_the_refill_ends(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 20)
    _running(study, 3)
    release = threading.Event()
    real = pool_module._refill_pool

    def slow(study: Study, *args: Any) -> None:
        assert release.wait(60)
        real(study, *args)

    monkeypatch.setattr(pool_module, "_refill_pool", slow)
    points = _fill(study, 2, basis=20)
    # The pool runs low: this ask takes a suggestion and starts a refill, without waiting for it.
    assert study.ask().params in points
    assert not study.wait_for_pool_refill(0.1)
    release.set()
    assert study.wait_for_pool_refill(120)
    assert len(study.storage.pooled_suggestions(study.id)) == pool_module._pool_size(4)


def test_a_resample_never_repeats_a_running_point(url: str) -> None:
    # A front of one point, already running, and resamples owed (the stored
    # history holds none): redrawing the resample eight times used to end by
    # handing out the running point again.
    study = create_study(
        "r", url, params=[Param("x", LinearSpace(min=0.0, max=1.0, scale=0.25), search_center=0.5)]
    )
    storage = study.storage
    for i in range(60):
        params = {"x": i / 60}
        record = storage.locked_study(study.id, lambda locked, p=params: locked.add_trial(p, suggestion_kind="random"))
        storage.finish_trial(study.id, record.number, state=TrialState.COMPLETE,
                             output=(params["x"] - 0.5) ** 2, cost=1.0)
    best = study.best_trial.params
    storage.locked_study(study.id, lambda locked: locked.add_trial(dict(best), suggestion_kind="model"))
    for _ in range(5):
        trial = study.ask()
        assert trial.params != best
    assert study.wait_for_pool_refill(120)


def test_a_version_3_database_gains_the_pool_in_place(url: str) -> None:
    study = create_study("old", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 12)
    as_written_by_schema(url, 3)
    storage = Storage(url)
    with storage.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("carbs_studies")}
        tables = set(inspect(conn).get_table_names())
        version = conn.execute(text("SELECT version FROM carbs_schema_version")).scalar()
    assert {"pool_claimed_at", "asking_since"} <= columns and "carbs_suggestion_pool" in tables
    assert version == SCHEMA_VERSION == 4
    again = load_study("old", storage)
    assert len(again.trials()) == 12
    _running(again, 2)
    again.ask()  # other trials run: the ask refills the pool
    assert again.wait_for_pool_refill(120)
    # One suggestion per trial in flight (at least _POOL_MIN), less the one this ask took
    # if it took it after the refill ended.
    assert pool_module._pool_size(3) - 1 <= len(again.storage.pooled_suggestions(again.id)) <= 8
    Storage(url)  # opening an upgraded database again changes nothing


def _request(study: Study) -> Any:
    from carbs.study.asking import _AskRequest

    return _AskRequest(definition=study._definition(), worker="w", heartbeat_grace=None, budget=None,
                       cost_left=None, retries=None, job=None)


def test_an_ask_under_way_lets_others_take_from_the_pool_without_the_lock(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers starting together: nothing runs yet, but one ask is under way (or a
    # refill is claimed). The others must not queue for the study lock to learn it.
    from carbs.storage import utcnow

    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    storage = study.storage
    _finish(study, 20)
    points = _fill(study, 4, basis=20)
    request = _request(study)
    assert pool_module._pop_fast(study, request) is None  # perhaps one process: the locked pick decides
    storage.locked_study(study.id, lambda locked: locked.set_asking_since(utcnow()))

    def no_lock(*args: Any) -> Any:
        raise AssertionError("the study lock was taken")

    real_locked = storage.locked_study
    monkeypatch.setattr(storage, "locked_study", no_lock)
    pick = pool_module._pop_fast(study, request)
    assert pick is not None and pick.record is not None and pick.record.params in points
    monkeypatch.setattr(storage, "locked_study", real_locked)
    storage.locked_study(study.id, lambda locked: locked.set_asking_since(None))
    storage.locked_study(study.id, lambda locked: locked.add_trial({"x": 0.9, "lr": 0.9}))  # then it ran
    storage.finish_trial(study.id, pick.record.number, state=TrialState.COMPLETE, output=1.0, cost=1.0)
    assert storage.claim_pool_refill(study.id, ttl=60.0)
    monkeypatch.setattr(storage, "locked_study", no_lock)
    again = pool_module._pop_fast(study, request, waiting=True)
    assert again is not None and again.record is not None and again.record.params in points


def test_a_locked_pick_on_an_empty_pool_claims_the_refill(url: str) -> None:
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    storage = study.storage
    _finish(study, 20)
    _running(study, 2)
    request = _request(study)
    first = storage.locked_study(study.id, lambda locked: pool_module._pick_pooled(study, locked, request))
    assert first.empty and first.claimed
    assert storage.pool_state(study.id)[1] is not None
    second = storage.locked_study(study.id, lambda locked: pool_module._pick_pooled(study, locked, request))
    assert second.empty and not second.claimed  # one process fills the pool
    # The claimed refill runs without claiming again, and releases the claim at its end.
    pool_module._refill_pool(study, request, claimed=True)
    assert len(storage.pooled_suggestions(study.id)) >= pool_module._POOL_MIN
    assert storage.pool_state(study.id)[1] is None


def test_an_ask_whose_suggestion_was_taken_waits_for_the_next_one(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Asks racing for the first rows of a refill: one that lost the race keeps
    # waiting (and starts the next refill if need be) instead of fitting models
    # of its own while the pool is being filled.
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _finish(study, 20)
    _running(study, 2)
    monkeypatch.setattr(pool_module, "_POOL_POLL_SECONDS", (0.01, 0.02))
    request = _request(study)
    points = _fill(study, 1, basis=20)
    lost = pool_module._PoolPick(concurrent=True, running=3)
    calls = []

    def pop() -> Any:
        calls.append(1)
        if len(calls) == 1:
            return lost  # another ask took the row first
        return pool_module._pop_fast(study, request, waiting=True)

    pick = pool_module._wait_for_pool(study, request, pop, lost)
    assert pick.record is not None and pick.record.params in points
    assert len(calls) == 2


def test_an_ask_of_its_own_does_not_repeat_a_pooled_point(url: str) -> None:
    # In the random phase a point is drawn from a stream numbered by the trials
    # handed out: an ask that suggests for itself while suggestions wait in the
    # pool must continue the stream past them, or it draws a pooled point again
    # (and the same point is run twice).
    study = create_study("s", url, params=PARAMS, settings={**MODEL_SETTINGS, "num_random_samples": 100})
    _finish(study, 10)
    _running(study, 2)
    request = _request(study)
    pool_module._refill_pool(study, request)
    pool_module._pop_fast(study, request)  # one taken: the pool is now behind the trials by one
    pooled = [p.params for p in study.storage.pooled_suggestions(study.id)]
    assert len(pooled) >= 3
    own = study._ask_models(request)
    assert own.params not in pooled
