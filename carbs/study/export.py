"""Flat views of a study's trials: rows, a pandas DataFrame, CSV and JSON files.

Export reads a study through :class:`StudyLike` and is imported by the
``Study`` only when called, so neither module needs the other at import time.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from carbs._extras import require
from carbs.optimizer.config import CARBSParams
from carbs.optimizer.space import Param
from carbs.stopping import EarlyStopping
from carbs.storage import IntermediateValue, TrialRecord

if TYPE_CHECKING:  # pragma: no cover
    import pandas


class StudyLike(Protocol):
    """What export reads of a study (``carbs.study.Study`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def params(self) -> list[Param]: ...
    @property
    def settings(self) -> CARBSParams: ...
    @property
    def early_stopping(self) -> EarlyStopping | None: ...
    def trials(self) -> list[TrialRecord]: ...
    def intermediate_values(
        self, numbers: Sequence[int] | None = None
    ) -> dict[int, list[IntermediateValue]]: ...


BASE_COLUMNS = (
    "number",
    "state",
    "output",
    "cost",
    "started_at",
    "finished_at",
    "duration",
    "worker",
    "suggestion_kind",
    "fail_kind",
    "fail_reason",
)


def trial_rows(trials: Sequence[TrialRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and one flat dict per trial (``params_<name>``, ``user_attrs_<key>``)."""
    param_names: list[str] = []
    attr_names: list[str] = []
    for t in trials:
        for name in t.params:
            if name not in param_names:
                param_names.append(name)
        for key in t.user_attrs:
            if key not in attr_names:
                attr_names.append(key)
    columns = [*BASE_COLUMNS, *(f"params_{n}" for n in param_names)]
    columns += [f"user_attrs_{k}" for k in attr_names]
    rows = []
    for t in trials:
        d = t.to_dict()
        row: dict[str, Any] = {c: d.get(c) for c in BASE_COLUMNS}
        row.update({f"params_{n}": t.params.get(n) for n in param_names})
        row.update({f"user_attrs_{k}": t.user_attrs.get(k) for k in attr_names})
        rows.append(row)
    return columns, rows


def trials_dataframe(trials: Sequence[TrialRecord]) -> pandas.DataFrame:
    """The trials as a DataFrame indexed by nothing in particular, one row per trial."""
    pd: Any = require("pandas", library="pandas", extra="pandas", what="trials_dataframe")
    columns, rows = trial_rows(trials)
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("started_at", "finished_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def trials_csv(trials: Sequence[TrialRecord]) -> str:
    """The trials as CSV text with a header row."""
    columns, rows = trial_rows(trials)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def study_json(study: StudyLike, trials: Sequence[TrialRecord] | None = None) -> dict[str, Any]:
    """The study definition and its trials, each with its learning curve, as one JSON-compatible dict."""
    trials = study.trials() if trials is None else trials
    curves = study.intermediate_values([t.number for t in trials])
    rule = study.early_stopping
    return {
        "study": study.name,
        "direction": study.direction,
        "metric": study.metric,
        "params": [p.to_dict() for p in study.params],
        "settings": study.settings.to_dict(),
        "early_stopping": rule.to_dict() if rule is not None else None,
        "trials": [
            {**t.to_dict(), "curve": [p.to_dict() for p in curves.get(t.number, [])]}
            for t in trials
        ],
    }


def export_trials(study: StudyLike, path: str, format: str | None = None) -> None:
    """Write a study's trials to ``path`` as ``"csv"`` or ``"json"`` (default: from the extension)."""
    fmt = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if fmt == "csv":
        text = trials_csv(study.trials())
    elif fmt == "json":
        text = json.dumps(study_json(study), indent=2) + "\n"
    else:
        raise ValueError(
            f"export format must be 'csv' or 'json', got {format or fmt or path!r}"
        )
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
