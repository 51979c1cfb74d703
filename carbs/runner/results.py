"""Turning what a trial program left behind into a trial result (or a failure reason)."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from carbs.runner.process import ProcessResult
from carbs.storage import FailKind

# Reported values kept with the trial besides the metric (JSON scalars only).
_MAX_USER_ATTRS = 50


@dataclass
class TrialOutcome:
    """The verdict on one trial run.

    Attributes:
        output: the metric, ``None`` if the trial failed.
        cost: the cost to record (wall-clock seconds unless a reported cost key is used).
        fail_kind / reason: why it failed, ``None`` if it completed.
        values: every value the program reported.
    """

    output: float | None
    cost: float
    fail_kind: FailKind | None = None
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether the trial failed."""
        return self.fail_kind is not None

    def user_attrs(self, metric: str) -> dict[str, Any]:
        """Reported values other than the metric that are worth keeping with the trial."""
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if key == metric or len(out) >= _MAX_USER_ATTRS:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                out[str(key)] = repr(value)
            elif isinstance(value, (str, int, float, bool)) or value is None:
                out[str(key)] = value
        return out


def read_results_file(path: str) -> tuple[dict[str, Any], str | None]:
    """Values from a results file (one JSON object, or JSON object lines) and any problem."""
    if not os.path.exists(path):
        return {}, None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        return {}, f"results file {path} cannot be read: {e.strerror}"
    if not text.strip():
        return {}, None
    try:
        whole = json.loads(text)
        if isinstance(whole, dict):
            return whole, None
        return {}, f"results file {path} holds {type(whole).__name__}, not a JSON object"
    except ValueError:
        pass
    values: dict[str, Any] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            return values, f"results file {path} line {i} is not valid JSON ({e}): {line[:200]!r}"
        if not isinstance(item, dict):
            return values, f"results file {path} line {i} is not a JSON object: {line[:200]!r}"
        values.update(item)
    return values, None


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def evaluate(
    result: ProcessResult,
    *,
    metric: str,
    cost_key: str | None,
    results_file: str,
    timeout: float | None,
) -> TrialOutcome:
    """Judge a finished program: exit status, then the reported metric and cost."""
    elapsed = max(result.elapsed, 1e-6)
    if result.start_error is not None:
        return TrialOutcome(None, elapsed, FailKind.ERROR, result.start_error)
    if result.interrupted:
        return TrialOutcome(None, elapsed, FailKind.INTERRUPTED, "interrupted")
    if result.timed_out:
        return TrialOutcome(None, elapsed, FailKind.TIMEOUT, f"timed out after {timeout:g} s")
    values: dict[str, Any] = dict(result.reported)
    file_values, file_problem = read_results_file(results_file)
    values.update(file_values)
    if result.returncode != 0:
        assert result.returncode is not None
        return TrialOutcome(None, elapsed, FailKind.ERROR, _exit_reason(result.returncode), values)
    if file_problem is not None:
        return TrialOutcome(None, elapsed, FailKind.BAD_OUTPUT, file_problem, values)
    if metric not in values:
        reason = f"metric {metric!r} was not reported"
        if result.bad_json:
            reason += f"; stdout lines that are not valid JSON: {result.bad_json[-3:]}"
        elif values:
            reason += f"; reported keys: {sorted(values)}"
        else:
            reason += (
                f"; print a JSON line such as {{\"{metric}\": 0.31}}, write it to "
                "$CARBS_RESULTS_FILE, or call carbs.report()"
            )
        return TrialOutcome(None, elapsed, FailKind.BAD_OUTPUT, reason, values)
    output = _number(values[metric])
    if output is None:
        return TrialOutcome(
            None,
            elapsed,
            FailKind.BAD_OUTPUT,
            f"metric {metric!r} must be a number, got {values[metric]!r}",
            values,
        )
    if not math.isfinite(output):
        return TrialOutcome(
            None, elapsed, FailKind.BAD_OUTPUT, f"metric {metric!r} is not finite: {output!r}", values
        )
    cost = elapsed
    if cost_key is not None:
        reported = _number(values.get(cost_key))
        if reported is None or not math.isfinite(reported) or reported <= 0:
            return TrialOutcome(
                None,
                elapsed,
                FailKind.BAD_OUTPUT,
                f"cost {cost_key!r} must be reported as a finite number > 0, "
                f"got {values.get(cost_key)!r}",
                values,
            )
        cost = reported
    return TrialOutcome(output, cost, None, None, values)
