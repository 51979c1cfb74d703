"""The JSON-lines protocol between the harness and an out-of-process tuner.

Requests, one JSON object per line on the driver's stdin:

* ``{"op": "init", "knobs": [...], "seed": 0, "options": {...}}``: knobs as
  ``Knob.to_dict()``; options are keyword arguments for the tuner.
* ``{"op": "ask"}``: answered with ``{"ok": true, "params": {...}}``.
* ``{"op": "tell", "params": {...}, "output": 0.3, "cost": 12.0, "is_failure": false}``.
* ``{"op": "close"}``: the driver exits.

Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
The driver's real stdout carries only replies; anything a library prints goes
to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Protocol


class DriverTuner(Protocol):
    """What a driver module provides for :func:`serve`."""

    def ask(self) -> dict[str, Any]:
        """The next setting."""

    def tell(self, params: dict[str, Any], output: float | None, cost: float, is_failure: bool) -> None:
        """A finished trial."""


def serve(make: Any) -> None:
    """Answer requests until ``close`` or end of input; ``make(knobs, seed, **options)`` builds the tuner."""
    # Keep the protocol channel private: libraries that print would corrupt it.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    tuner: DriverTuner | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        reply: dict[str, Any]
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "init":
                tuner = make(req["knobs"], int(req["seed"]), **req.get("options", {}))
                reply = {"ok": True}
            elif op == "close":
                channel.write(json.dumps({"ok": True}) + "\n")
                return
            elif tuner is None:
                reply = {"ok": False, "error": f"request {op!r} before init"}
            elif op == "ask":
                reply = {"ok": True, "params": tuner.ask()}
            elif op == "tell":
                tuner.tell(req["params"], req["output"], float(req["cost"]), bool(req["is_failure"]))
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as exc:  # the harness reports the driver's error text
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        channel.write(json.dumps(reply) + "\n")


def plain(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar, for JSON."""
    if hasattr(value, "item"):
        return value.item()
    return value
