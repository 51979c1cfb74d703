"""Studies: a CARBS search whose trials live in a database.

``core`` holds the :class:`Study` (create/load, ask/tell, results),
``pool`` its suggestion pool for many workers asking at once, ``asking``
the budget and retry rules every ask applies, ``trial`` what it hands out,
``optimize`` the in-process loop behind :meth:`Study.optimize`,
``heartbeat`` the thread that keeps running trials alive, and ``export``
the CSV/JSON/DataFrame views. ``core`` imports ``pool`` and ``pool`` only
names ``Study`` in annotations, so the package has no import circles.
"""

from carbs.storage import StudyExistsError, StudyNotFoundError, TrialStateError
from carbs.study.core import (
    PruningSummary,
    Study,
    budget_exhausted,
    create_study,
    delete_study,
    load_study,
)
from carbs.study.trial import (
    BudgetExhausted,
    ObjectiveResult,
    StudyDefinitionError,
    Trial,
    TrialPruned,
    current_trial,
    default_worker_name,
    direction_sign,
    format_exception_tail,
    trial_observation,
)

__all__ = [
    "BudgetExhausted",
    "ObjectiveResult",
    "PruningSummary",
    "Study",
    "StudyDefinitionError",
    "StudyExistsError",
    "StudyNotFoundError",
    "Trial",
    "TrialPruned",
    "TrialStateError",
    "budget_exhausted",
    "create_study",
    "current_trial",
    "default_worker_name",
    "delete_study",
    "direction_sign",
    "format_exception_tail",
    "load_study",
    "trial_observation",
]
