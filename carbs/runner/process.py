"""Running one trial program: timeout, interruption, bounded output capture.

The program runs in its own session (process group) so that a timeout or an
interruption can stop it together with any processes it started, and on
Linux it is told to exit if the runner dies (``PR_SET_PDEATHSIG``), so that a
``kill -9`` of the runner does not leave orphaned training jobs behind.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

logger = logging.getLogger(__name__)

# Longest stdout line read as one piece (a JSON result line must fit in it).
_STDOUT_LINE_LIMIT = 1 << 20
_STDERR_LINE_LIMIT = 1 << 16
# Characters of one line kept in a tail.
_TAIL_LINE_CHARS = 2000
_MAX_REPORTED_KEYS = 1000  # distinct keys kept from JSON lines on stdout
# Seconds between SIGTERM and SIGKILL when stopping a program.
DEFAULT_KILL_GRACE = 5.0


def _parent_death_signal() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return set_signal


_PREEXEC = _parent_death_signal()


@dataclass
class ProcessResult:
    """What a finished (or stopped) trial program left behind.

    Attributes:
        returncode: exit code; negative for a signal; ``None`` if it could not start.
        elapsed: wall-clock seconds.
        timed_out / interrupted: it was stopped for running too long / on request.
        stopped_early: it was stopped because ``should_stop`` said so (early stopping).
        reported: the JSON objects printed on stdout merged in order (later values
            win; at most the 1,000 most recently reported keys), so memory stays
            bounded however many lines the program prints.
        bad_json: lines that looked like JSON objects but did not parse (the last few).
        stdout_tail / stderr_tail: the last lines of each stream.
        start_error: why the program could not be started.
    """

    returncode: int | None
    elapsed: float
    timed_out: bool = False
    interrupted: bool = False
    stopped_early: bool = False
    reported: dict[str, Any] = field(default_factory=dict)
    bad_json: list[str] = field(default_factory=list)
    stdout_tail: str = ""
    stderr_tail: str = ""
    start_error: str | None = None


class _Reader(threading.Thread):
    """Drains one pipe, keeping a bounded tail (and, for stdout, the JSON lines)."""

    def __init__(
        self,
        stream: IO[bytes],
        tail_lines: int,
        line_limit: int,
        parse_json: bool,
        log_file: IO[bytes] | None,
        echo: IO[str] | None,
        on_line: Callable[[str], None] | None = None,
        on_json: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.on_json = on_json
        self.stream = stream
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.line_limit = line_limit
        self.parse_json = parse_json
        self.log_file = log_file
        self.echo = echo
        self.on_line = on_line
        self.reported: dict[str, Any] = {}
        self.bad_json: collections.deque[str] = collections.deque(maxlen=5)

    def run(self) -> None:
        try:
            while True:
                raw = self.stream.readline(self.line_limit)
                if not raw:
                    break
                if self.log_file is not None:
                    self.log_file.write(raw)
                    self.log_file.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if self.echo is not None:
                    print(line, file=self.echo, flush=True)
                self.tail.append(line[:_TAIL_LINE_CHARS])
                if self.parse_json:
                    self._maybe_json(line.strip())
                if self.on_line is not None:
                    self.on_line(line)
        except (OSError, ValueError):  # pipe closed under us while stopping
            pass

    def _maybe_json(self, line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            value = json.loads(line)
        except ValueError:
            self.bad_json.append(line[:200])
            return
        if isinstance(value, dict):
            if self.on_json is not None:
                self.on_json(value)
            for key, item in value.items():
                # Least recently reported keys go first, so a program that
                # invents a new key on every line cannot grow memory without
                # bound, while the metric it reports last is always kept.
                self.reported.pop(key, None)
                if len(self.reported) >= _MAX_REPORTED_KEYS:
                    del self.reported[next(iter(self.reported))]
                self.reported[key] = item


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:  # pragma: no cover - POSIX is the supported platform
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen[bytes], kill_grace: float) -> None:
    """SIGTERM the program's process group, then SIGKILL it if it lingers."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=kill_grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    # Children that ignored SIGTERM would keep the pipes open: end them too.
    _signal_group(proc, signal.SIGKILL)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    tail_lines: int = 40,
    stdout_log: str | None = None,
    stderr_log: str | None = None,
    echo: bool = False,
    kill_grace: float = DEFAULT_KILL_GRACE,
    on_start: Callable[[int], None] | None = None,
    on_stdout_line: Callable[[str], None] | None = None,
    on_json: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_grace: float | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion, a timeout, or until ``stop`` is set.

    Memory stays bounded whatever the program prints: only the last
    ``tail_lines`` lines of each stream and the JSON object lines of stdout are kept;
    ``on_stdout_line`` sees every stdout line (in the reading thread).

    ``on_json`` is called (from a reader thread) with each JSON object line of
    stdout as it arrives; ``should_stop`` is polled about ten times a second
    and, when it returns true, the program is stopped (SIGTERM, then SIGKILL
    after ``stop_grace`` seconds, default ``kill_grace``) and the result is
    marked ``stopped_early``.
    """
    start = time.monotonic()
    logs: list[IO[bytes]] = []
    try:
        out_log = open(stdout_log, "ab") if stdout_log else None  # noqa: SIM115
        err_log = open(stderr_log, "ab") if stderr_log else None  # noqa: SIM115
        logs = [f for f in (out_log, err_log) if f is not None]
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=os.name == "posix",
                preexec_fn=_PREEXEC,
            )
        except OSError as e:
            return ProcessResult(
                returncode=None,
                elapsed=time.monotonic() - start,
                start_error=f"cannot start {argv[0]!r}: {e.strerror or e}",
            )
        if on_start is not None:
            on_start(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        out = _Reader(
            proc.stdout, tail_lines, _STDOUT_LINE_LIMIT, True, out_log, sys.stdout if echo else None,
            on_stdout_line, on_json,
        )
        err = _Reader(proc.stderr, tail_lines, _STDERR_LINE_LIMIT, False, err_log, sys.stderr if echo else None)
        out.start()
        err.start()
        timed_out = interrupted = stopped_early = False
        deadline = None if timeout is None else start + timeout
        try:
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if stop is not None and stop.is_set():
                    interrupted = True
                    _stop(proc, kill_grace)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    timed_out = True
                    _stop(proc, kill_grace)
                    break
                if should_stop is not None and should_stop():
                    stopped_early = True
                    _stop(proc, kill_grace if stop_grace is None else stop_grace)
                    break
        except BaseException:
            _stop(proc, kill_grace)
            raise
        finally:
            out.join(timeout=kill_grace)
            err.join(timeout=kill_grace)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        return ProcessResult(
            returncode=proc.returncode,
            elapsed=time.monotonic() - start,
            timed_out=timed_out,
            interrupted=interrupted,
            stopped_early=stopped_early,
            reported=out.reported,
            bad_json=list(out.bad_json),
            stdout_tail="\n".join(out.tail),
            stderr_tail="\n".join(err.tail),
        )
    finally:
        for f in logs:
            f.close()
