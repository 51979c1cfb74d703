"""Turning what a trial program left behind into a trial result (or a failure reason)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from carbs.runner.process import ProcessResult
from carbs.storage import FailKind
from carbs.sweep_config import compile_metric_regex

# Reported values kept with the trial besides the metric (JSON scalars only).
_MAX_USER_ATTRS = 50


@dataclass
class TrialOutcome:
    """The verdict on one trial run.

    Attributes:
        output: the metric, ``None`` if the trial failed.
        cost: the cost to record (wall-clock seconds unless a reported cost key is used).
        fail_kind / reason: why it failed (or, when ``pruned``, why it was stopped).
        values: every value the program reported.
        pruned: it was stopped early; ``output`` and ``cost`` are its last
            intermediate value and the cost spent.
    """

    output: float | None
    cost: float
    fail_kind: FailKind | None = None
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    pruned: bool = False

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


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan|Infinity|NaN)\b"
# What the runner reads, strongest first; documented in docs/sweeps.md.
READ_FORMS = (
    'a JSON object line on stdout ({{"{key}": 0.31}}), the results file $CARBS_RESULTS_FILE '
    'or carbs.report(); then metric_regex, if set; then a stdout line holding '
    "{key}: 0.31 or {key}=0.31 (the last one wins)"
)


def key_value_pattern(key: str) -> re.Pattern[str]:
    """``key: 0.31``, ``key=0.31`` or ``'key': 0.31`` anywhere in a line, not inside a longer name."""
    return re.compile(
        rf"(?<![\w.])[\"']?{re.escape(key)}[\"']?\s*[:=]\s*({_NUMBER})(?![\w.])"
    )


class TextValues:
    """Reads ``key: value`` / ``key=value`` forms (and ``metric_regex``) from a program's stdout lines.

    These are the weakest source: a JSON line, the results file or
    ``carbs.report`` always win over them (see :func:`evaluate`).
    """

    def __init__(self, keys: Sequence[str], metric: str, metric_regex: str | None = None) -> None:
        self.patterns = {key: key_value_pattern(key) for key in keys}
        self.metric = metric
        self.regex = compile_metric_regex(metric_regex) if metric_regex else None
        self.text: dict[str, float] = {}
        self.regex_value: float | None = None

    def feed(self, line: str) -> None:
        """Look at one stdout line; later matches win.

        A line that starts like a JSON object (``{"``) is JSON's alone, so a
        broken JSON line fails the trial as such instead of being half read.
        """
        if line.lstrip().startswith('{"'):
            return
        for key, pattern in self.patterns.items():
            if key not in line:  # a plain substring test spares the regex on most lines
                continue
            found = pattern.findall(line)
            if found:
                self.text[key] = float(found[-1])
        if self.regex is not None:
            match = self.regex.search(line)
            if match is not None:
                raw = match.group("value") if "value" in self.regex.groupindex else match.group(1)
                with contextlib.suppress(TypeError, ValueError):
                    self.regex_value = float(raw)

    def values(self) -> dict[str, float]:
        """What was read, ``metric_regex`` winning over the plain forms for the metric."""
        out = dict(self.text)
        if self.regex_value is not None:
            out[self.metric] = self.regex_value
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


def last_line(text: str | None, limit: int = 300) -> str:
    """The last non-blank line of ``text`` (for a Python program: the exception), shortened."""
    for line in reversed((text or "").splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


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
    text_values: dict[str, float] | None = None,
) -> TrialOutcome:
    """Judge a finished program: exit status, then the reported metric and cost.

    Values come from (weakest first) ``text_values`` (see :class:`TextValues`),
    the JSON lines on stdout, then the results file.
    """
    elapsed = max(result.elapsed, 1e-6)
    if result.start_error is not None:
        return TrialOutcome(None, elapsed, FailKind.ERROR, result.start_error)
    if result.interrupted:
        return TrialOutcome(None, elapsed, FailKind.INTERRUPTED, "interrupted")
    if result.timed_out:
        return TrialOutcome(None, elapsed, FailKind.TIMEOUT, f"timed out after {timeout:g} s")
    values: dict[str, Any] = dict(text_values or {})
    values.update(result.reported)
    file_values, file_problem = read_results_file(results_file)
    values.update(file_values)
    if result.returncode != 0:
        assert result.returncode is not None
        # The exception (the last line of stderr) goes into the reason, so every
        # place that shows the failure shows why, not only the exit code.
        reason = _exit_reason(result.returncode)
        cause = last_line(result.stderr_tail)
        return TrialOutcome(
            None, elapsed, FailKind.ERROR, f"{reason}: {cause}" if cause else reason, values
        )
    if file_problem is not None:
        return TrialOutcome(None, elapsed, FailKind.BAD_OUTPUT, file_problem, values)
    if metric not in values:
        reason = f"metric {metric!r} was not reported"
        if result.bad_json:
            reason += f"; stdout lines that are not valid JSON: {result.bad_json[-3:]}"
        elif values:
            reason += f"; reported keys: {sorted(values)}"
        reason += "; carbs reads " + READ_FORMS.format(key=metric)
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
