"""Intermediate reports of a running trial program: read live, stored, and judged.

A program reports a point of its learning curve by printing a JSON line with
a ``step`` (``{"step": 3, "val_loss": 0.41}``) or by calling
``carbs.report(step=3, val_loss=0.41)``, which appends the same line to
``$CARBS_RESULTS_FILE``. :class:`CurveWatcher` takes the stdout lines from the
reader thread and tails the results file while the program runs, stores the
points in batches, and asks the study's stopping rule whether to stop the
program.

A line with a ``step`` that cannot be a curve point (a step that is not an
integer >= 0 or does not increase, a metric that is not a finite number, a
missing reported cost) is not stored on the curve: a warning names the trial,
the problem and the line, the message is kept with the trial
(``user_attrs["report_problems"]``), and the line's values still count for
the trial's result, so nothing the program reported is lost.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from carbs.storage import StorageError, TrialStateError

if TYPE_CHECKING:  # pragma: no cover
    from carbs.stopping import Decision, EarlyStopping
    from carbs.study import Study, Trial

logger = logging.getLogger(__name__)

STEP_KEY = "step"
# Seconds between two writes of buffered points (a fast program may print many).
_FLUSH_INTERVAL = 1.0
# Problems kept with a trial; later ones are only counted.
_MAX_PROBLEMS = 20
# Lines taken from the reader thread before the oldest are dropped unread.
_MAX_PENDING = 10000


class CurveWatcher:
    """Collects one running program's intermediate reports; see the module docstring.

    Args:
        study: the study of the trial.
        trial: the running trial.
        metric: the key of the optimised value.
        cost_key: the key of a reported cost, or ``None`` for wall-clock seconds.
        results_file: the file ``carbs.report`` appends to.
        rule: the stopping rule, or ``None`` to only record the curve.
    """

    def __init__(
        self,
        study: Study,
        trial: Trial,
        metric: str,
        cost_key: str | None,
        results_file: str,
        rule: EarlyStopping | None,
    ) -> None:
        self.study = study
        self.trial = trial
        self.metric = metric
        self.cost_key = cost_key
        self.results_file = results_file
        self.rule = rule
        self.start = time.monotonic()
        self.problems: list[str] = []
        self.problem_count = 0
        self.last_step: int | None = None
        self.last_value: float | None = None
        self.last_cost: float | None = None
        self.points = 0
        self.decision: Decision | None = None
        # (line, monotonic time it arrived): the cost of a point is the time it was printed.
        self._pending: collections.deque[tuple[dict[str, Any], float]] = collections.deque(
            maxlen=_MAX_PENDING
        )
        self._lock = threading.Lock()
        self._buffer: list[tuple[int, float, float]] = []
        self._offset = 0
        self._partial = b""
        self._last_flush = 0.0
        self._last_check = 0.0
        self._unjudged = False

    # -- input ----------------------------------------------------------------------
    def on_json(self, obj: dict[str, Any]) -> None:
        """A JSON object line from stdout (called from the reader thread)."""
        if STEP_KEY in obj:
            with self._lock:
                self._pending.append((obj, time.monotonic()))

    def _read_file(self) -> None:
        try:
            with open(self.results_file, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as e:
            logger.debug("trial %d: results file not readable yet: %s", self.trial.number, e)
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the rest
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # the whole-file form is judged when the program ends
            if isinstance(obj, dict) and STEP_KEY in obj:
                self._take(obj, time.monotonic())

    def _drain(self) -> None:
        with self._lock:
            objs = list(self._pending)
            self._pending.clear()
        for obj, when in objs:
            self._take(obj, when)
        self._read_file()

    # -- one line -----------------------------------------------------------------------
    def _problem(self, message: str, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, default=str)[:200]
        text = f"{message}: {line}"
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)
        logger.warning("trial %d: intermediate report not stored on the curve: %s",
                       self.trial.number, text)

    def _take(self, obj: dict[str, Any], when: float) -> None:
        step = obj.get(STEP_KEY)
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            self._problem(f"{STEP_KEY!r} must be an integer >= 0, got {step!r}", obj)
            return
        if self.metric not in obj:
            return  # a step line of other values (e.g. training loss): nothing to plot
        value = obj[self.metric]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._problem(
                f"metric {self.metric!r} at step {step} must be a finite number, got {value!r}", obj
            )
            return
        if self.last_step is not None and step <= self.last_step:
            self._problem(
                f"step {step} does not come after step {self.last_step}; steps must increase", obj
            )
            return
        if self.cost_key is None:
            cost = max(when - self.start, 1e-6)
        else:
            reported = obj.get(self.cost_key)
            if isinstance(reported, bool) or not isinstance(reported, (int, float)) or not (
                math.isfinite(reported) and reported >= 0
            ):
                self._problem(
                    f"cost {self.cost_key!r} at step {step} must be reported with the metric as "
                    f"a number >= 0, got {reported!r}",
                    obj,
                )
                return
            cost = float(reported)
        self._buffer.append((step, float(value), cost))
        self.last_step, self.last_value, self.last_cost = step, float(value), cost
        self.points += 1

    # -- output -------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            self.study.storage.add_intermediate(self.study.id, self.trial.number, batch)
        except (StorageError, TrialStateError, ValueError) as e:
            # Kept for the next flush unless the trial can no longer take points.
            if isinstance(e, StorageError) and not isinstance(e, TrialStateError):
                self._buffer = batch + self._buffer
            logger.warning("trial %d: intermediate values not stored: %s", self.trial.number, e)
            return
        self._last_flush = time.monotonic()
        self._unjudged = True

    def poll(self) -> bool:
        """Take new reports, store them, and say whether the program should be stopped."""
        self._drain()
        now = time.monotonic()
        due = self.rule is not None and now - self._last_check >= self.rule.check_interval
        if self._buffer and (due or now - self._last_flush >= _FLUSH_INTERVAL):
            self._flush()
        if self.rule is None or not due or not self._unjudged:
            return False
        self._last_check = now
        self._unjudged = False
        try:
            decision = self.study.stop_decision(self.trial, self.rule)
        except StorageError as e:
            logger.warning("trial %d: stopping rule skipped: %s", self.trial.number, e)
            return False
        self.decision = decision
        if decision.stop:
            logger.info("trial %d: stopping early: %s", self.trial.number, decision.reason)
        return decision.stop

    def close(self) -> None:
        """After the program ended: take and store whatever is left."""
        self._drain()
        # A last line without its newline is complete now that the program ended.
        line = self._partial.decode("utf-8", errors="replace").strip()
        self._partial = b""
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and STEP_KEY in obj:
                self._take(obj, time.monotonic())
        self._flush()

    def user_attrs(self) -> dict[str, Any]:
        """What to keep with the trial about its reports (the problems, if any)."""
        if not self.problem_count:
            return {}
        out: dict[str, Any] = {"report_problems": list(self.problems)}
        if self.problem_count > len(self.problems):
            out["report_problems_total"] = self.problem_count
        return out
