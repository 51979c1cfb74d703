"""What an ask carries, and the rules every ask path applies before it suggests.

Both the pooled ask (``pool``) and the models' own ask (``core``) check the
study-wide budget and re-run a failed trial the retry policy names, inside
the study lock. This module imports nothing else of the study package, so
both build on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carbs.storage import TrialRecord, TrialState
from carbs.sweep_config import Budget, RetryPolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _AskRequest:
    """One call of ``Study.ask``, as every ask path needs it."""

    definition: str  # the digest of the asker's space, direction and settings
    worker: str
    heartbeat_grace: float | None
    budget: Budget | None
    cost_left: float | None
    retries: RetryPolicy | None
    job: str | None


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


def _add_rerun(locked: Any, again: TrialRecord, request: _AskRequest) -> TrialRecord:
    """Inside the study lock: add the trial that runs ``again``'s point once more (its lineage kept)."""
    record: TrialRecord = locked.add_trial(
        dict(again.params),
        worker=request.worker,
        heartbeat_grace=request.heartbeat_grace,
        suggestion_kind="retry",
        retry_of=again.number,
        job=request.job,
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
