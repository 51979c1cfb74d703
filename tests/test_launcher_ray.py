"""The Ray launcher on a real two-node Ray cluster, in a network namespace of its own.

The head and a second node run on this machine (``ray start``); ``carbs run``
drives the sweep with ``launcher: {type: ray}``. The second node's raylet is
killed while it runs a trial: that trial must be FAILED(lost) and, with
``retries: 1``, its point re-run (in the same ``$CARBS_TRIAL_DIR``) while
nothing else is lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from _netns import only_loopback, private_network
from _storage_urls import carbs_run, marker_text, wait_for, write_launcher_sweep

from carbs.storage import FailKind, TrialState
from carbs.study import load_study

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
PORT = 6391

# The program finds the raylet of its node: program -> Ray worker -> raylet.
TRIAL = r'''
import json, os, sys, time

def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])

x, markers = float(sys.argv[1]), sys.argv[2]
raylet = parent(os.getppid())
with open(f"/proc/{raylet}/cmdline", "rb") as f:
    on_second = b"sockets/raylet.1" in f.read()
checkpoint = os.path.join(os.environ["CARBS_TRIAL_DIR"], "checkpoint")
resumed = os.path.exists(checkpoint)
if on_second and os.path.exists(os.path.join(markers, "second-done")):
    try:
        fd = os.open(os.path.join(markers, "victim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        with open(checkpoint, "w") as f:
            f.write("half way")
        os.write(fd, str(raylet).encode())
        os.close(fd)
        time.sleep(120)  # until the node is killed under it
time.sleep(0.5)
if on_second:
    open(os.path.join(markers, "second-done"), "a").close()
print(json.dumps({"loss": x * x, "resumed": int(resumed)}))
'''


def _own_processes(marker: str) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def _stop(marker: str) -> None:
    """Stop this test's Ray processes only (``ray stop`` would stop every Ray on the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _own_processes(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(1.0)


def _raylets(marker: str) -> dict[str, tuple[int, str]]:
    """``head``/``second`` -> (raylet pid, node id) of this test's cluster."""
    found = {}
    for pid in _own_processes(marker):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode().split("\0")
        except OSError:
            continue
        if not args[0].endswith("/raylet"):
            continue
        node = next(a.split("=", 1)[1] for a in args if a.startswith("--node_id="))
        role = "second" if any(a.endswith("sockets/raylet.1") for a in args) else "head"
        found[role] = (pid, node)
    return found


@pytest.fixture(scope="module")
def ray_nodes() -> Iterator[dict[str, Any]]:
    temp_dir = tempfile.mkdtemp(prefix="carbslr", dir="/tmp")  # socket paths must stay short
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        # Notice a dead node within seconds, not the default half minute.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "4",
    }
    common = ["--num-cpus=1", "--disable-usage-stats"]
    with private_network():
        assert only_loopback()
        try:
            subprocess.run(
                [RAY, "start", "--head", f"--port={PORT}", "--include-dashboard=false",
                 f"--temp-dir={temp_dir}", *common],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            subprocess.run(
                [RAY, "start", f"--address=127.0.0.1:{PORT}", *common],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            nodes = wait_for(lambda: (r := _raylets(temp_dir)) and len(r) == 2 and r, 60, "two raylets")
            yield {"address": f"127.0.0.1:{PORT}", "env": env, "raylets": nodes}
        finally:
            _stop(temp_dir)


def test_trials_spread_over_both_nodes_and_a_lost_node_reruns_its_trial(
    ray_nodes: dict[str, Any], tmp_path: Path
) -> None:
    db = tmp_path / "ray.db"
    launcher = f"{{type: ray, address: '{ray_nodes['address']}', resources: {{num_cpus: 1}}}}"
    markers = write_launcher_sweep(tmp_path, TRIAL, name="ray-sweep", trials=6, launcher=launcher)
    with carbs_run(tmp_path, db, ray_nodes["env"]) as driver:
        victim = markers / "victim"
        wait_for(marker_text(driver, victim), 240, "a trial waiting on the second node")
        raylet_pid, second_id = ray_nodes["raylets"]["second"]
        assert int(victim.read_text()) == raylet_pid
        os.kill(raylet_pid, signal.SIGKILL)  # the node is lost mid-trial
        out, _ = driver.communicate(timeout=240)
    assert driver.returncode == 0, out
    trials = load_study("ray-sweep", f"sqlite:///{db}").trials()
    lost = [t for t in trials if t.fail_kind == FailKind.LOST]
    assert len(lost) == 1, [(t.number, t.state, t.fail_kind, t.fail_reason) for t in trials]
    assert "Ray cluster" in (lost[0].fail_reason or "")
    retry = [t for t in trials if t.retry_of == lost[0].number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == lost[0].params and retry[0].suggestion_kind == "retry"
    assert retry[0].user_attrs["resumed"] == 1  # the same trial directory, checkpoint kept
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and len(trials) == 7  # nothing else lost
    nodes = {t.user_attrs["ray_node_id"] for t in complete}
    assert second_id in nodes and ray_nodes["raylets"]["head"][1] in nodes
    assert all((t.job or "").startswith("ray:") for t in trials)
    assert json.loads(json.dumps([t.to_dict() for t in trials]))  # lineage fields serialise
