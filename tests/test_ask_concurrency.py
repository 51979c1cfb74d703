"""Asks from many workers: models fitted outside the study lock, hyperparameters shared.

On SQLite and (with CARBS_TEST_POSTGRES_URL) PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import carbs.optimizer.surrogate as surrogate
import carbs.study.core as study_module
import carbs.study.pool as pool_module
from benchmarks.reliability.load import PARAMS, objective, run_load
from carbs import ObservationInParam
from carbs.optimizer.gp import GPRegressor
from carbs.storage import Storage
from carbs.study import Study, create_study, load_study

MODEL_SETTINGS = {"num_random_samples": 4, "num_candidates_for_suggestion_per_dim": 10}



def _run(study: Study, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, *objective(trial.params))


def test_concurrent_model_asks_hand_out_no_duplicates_and_lose_nothing(url: str) -> None:
    # Every ask after the first few is made by the models, on snapshots that
    # other processes' asks and tells keep making stale.
    result = run_load(url, backend="any", processes=6, trials_per_process=5,
                      settings=MODEL_SETTINGS, seed_trials=6)
    assert result.errors == 0, result.error_samples
    assert (result.asked, result.told) == (30, 30)
    assert result.lost == 0 and result.duplicated == 0


def test_the_models_are_never_fitted_while_the_study_is_locked(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    b = load_study("s", url)
    # The threads inside the lock now (the pool is refilled in background threads,
    # which fit outside it while an ask may hold it).
    locked: set[int] = set()
    fits = {"inside": 0, "outside": 0}
    real_locked, real_fit = Storage.locked_study, GPRegressor.fit

    def tracking_locked(self: Storage, study_id: int, fn: Any) -> Any:
        locked.add(threading.get_ident())
        try:
            return real_locked(self, study_id, fn)
        finally:
            locked.discard(threading.get_ident())

    def counting_fit(self: GPRegressor, *args: Any, **kwargs: Any) -> GPRegressor:
        fits["inside" if threading.get_ident() in locked else "outside"] += 1
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(Storage, "locked_study", tracking_locked)
    monkeypatch.setattr(GPRegressor, "fit", counting_fit)
    for _ in range(6):  # two studies taking turns, each seeing the other's trials
        ta, tb = a.ask(), b.ask()
        assert ta.params != tb.params
        a.tell(tb, *objective(tb.params))
        b.tell(ta, *objective(ta.params))
    assert fits["outside"] > 0 and fits["inside"] == 0


def test_trials_started_or_finished_after_the_snapshot_are_pending(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path of an ask that scores under the lock (the suggestion pool is
    # tested in test_suggestion_pool.py).
    monkeypatch.setattr(pool_module, "_pop_fast", lambda *args, **kwargs: None)
    monkeypatch.setattr(pool_module, "_pick_pooled", lambda *args, **kwargs: pool_module._PoolPick())
    a = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _run(a, 6)
    snapshot = a._take_snapshot()
    b = load_study("s", url)
    finished = b.ask()
    b.tell(finished, *objective(finished.params))
    running = b.ask()
    fitted = snapshot.optimizer._fit_cache
    a._take_snapshot = lambda *args: snapshot  # type: ignore[method-assign]
    trial = a.ask()
    pending = snapshot.optimizer.outstanding_suggestions
    assert {f"trial-{finished.number}", f"trial-{running.number}"} <= set(pending)
    assert trial.params not in (finished.params, running.params)
    assert snapshot.optimizer._fit_cache is fitted  # scored with the snapshot's models


def test_a_snapshot_too_old_is_taken_again(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _run(a, 6)
    stale = a._take_snapshot()
    _run(load_study("s", url), 3)
    monkeypatch.setattr(pool_module, "_STALE_TRIALS", 2)
    taken: list[Any] = []
    real_take = Study._take_snapshot

    def take(self: Study) -> Any:
        snap = stale if not taken else real_take(self)
        taken.append(snap)
        return snap

    monkeypatch.setattr(Study, "_take_snapshot", take)
    trial = a.ask()
    assert len(taken) == 2 and taken[1] is not stale
    assert len(taken[1].observed) == 9
    assert trial.number == 9


def test_hyperparameters_are_searched_once_and_shared(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study_module, "REFIT_MIN_OBSERVATIONS", 10)
    monkeypatch.setattr(surrogate, "REFIT_MIN_OBSERVATIONS", 10)
    a = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    _run(a, 12)  # the last ask fitted on 11 observations
    stored = a.storage.model_cache(a.id)
    assert stored is not None and stored[0] == 11
    b = load_study("s", url)  # another worker: reuses them without a search
    trial = b.ask()
    assert b._snapshot is not None
    hp = b._snapshot.optimizer.surrogate_hyperparameters
    assert hp is not None and hp.to_dict() == stored[1]
    b.tell(trial, *objective(trial.params))
    # 13 observations: the stored ones are too old, but while another process
    # holds the claim to search new ones, the old ones serve.
    assert b.storage.claim_model_refit(b.id, ttl=60.0)
    c = load_study("s", url)
    start = time.monotonic()
    c.ask()
    assert time.monotonic() - start < 30
    assert c._snapshot is not None
    hp = c._snapshot.optimizer.surrogate_hyperparameters
    assert hp is not None and hp.output_theta == tuple(stored[1]["output_theta"])
    assert a.storage.model_cache(a.id) == stored


def test_stopped_runs_do_not_end_the_random_phase_for_the_shared_models(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the optimizer, only finished runs count towards num_random_samples:
    # a process still in the random phase fits no model, so it must not claim
    # the search (the others would wait on a claim that is never fulfilled).
    monkeypatch.setattr(study_module, "REFIT_MIN_OBSERVATIONS", 5)
    study = create_study("s", url, params=PARAMS, settings=MODEL_SETTINGS)
    opt = study.build_optimizer([])
    for i in range(6):
        point = {"x": i / 10, "lr": 1e-2}
        opt.observe(ObservationInParam(point, *objective(point), is_partial=i >= 3))
    assert len(opt.success_observations) == 6 and len(opt.complete_observations) == 3
    assert not study._share_hyperparameters(opt)
    assert study.storage.claim_model_refit(study.id, ttl=60.0)  # nobody had claimed it


def test_model_cache_claims_and_saves(url: str) -> None:
    study = create_study("s", url, params=PARAMS)
    storage = study.storage
    assert storage.model_cache(study.id) is None
    assert storage.claim_model_refit(study.id, ttl=60.0)
    assert not storage.claim_model_refit(study.id, ttl=60.0)
    assert storage.model_cache(study.id) is None
    storage.save_model_cache(study.id, 50, {"a": 1})
    assert storage.model_cache(study.id) == (50, {"a": 1})
    assert storage.claim_model_refit(study.id, ttl=60.0)  # saving ended the claim
    storage.save_model_cache(study.id, 40, {"a": 0})  # older: kept out
    assert storage.model_cache(study.id) == (50, {"a": 1})
    assert storage.claim_model_refit(study.id, ttl=0.0)  # an expired claim is taken over
    storage.delete_study("s")
    again = create_study("s", url, params=PARAMS)
    assert storage.model_cache(again.id) is None
