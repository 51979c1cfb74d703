"""The dashboard's server without a browser: incremental reads, the API, the token, the CLI.

The pages themselves are tested in Chromium in ``test_dashboard_browser.py``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("plotly")

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import carbs
from benchmarks.dashboard import demo_params, fill_study
from carbs.dashboard.app import create_app
from carbs.dashboard.data import Feeds
from carbs.dashboard.server import access_token, is_loopback
from carbs.storage import Storage


@pytest.fixture()
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    fill_study(url, "s", 40, seed=3, running=1)
    return url


def _client(url: str, **kwargs: Any) -> tuple[TestClient, Feeds]:
    storage = Storage(url)
    # Analyses in this process: a worker process would only add its start-up time here.
    feeds = Feeds(storage, {"n_bootstrap": 20}, run=lambda fn, job: fn(*job))
    return TestClient(create_app(storage, feeds=feeds, **kwargs)), feeds


def test_refresh_reads_only_new_and_unfinished_trials(url: str) -> None:
    client, feeds = _client(url)
    with client:
        first = client.get("/api/studies/s/trials?since=0").json()
        assert len(first["trials"]) == 41 and first["version"] >= 1
        states = first["progress"]["states"]
        assert states["RUNNING"] == 1 and sum(states.values()) == 41
        feed = feeds.get("s")
        read = feed.rows_read
        assert read == 41
        # Nothing changed: the refresh reads only the running trial again, and sends nothing.
        feed.refresh(force=True)
        assert feed.rows_read == read + 1
        again = client.get(f"/api/studies/s/trials?since={first['version']}").json()
        assert again["trials"] == [] and again["version"] == first["version"]
        # Another process finishes the running trial and starts and finishes a new one.
        study = carbs.load_study("s", url)
        running = next(t for t in first["trials"] if t["state"] == "RUNNING")["number"]
        study.tell(running, output=2.5, cost=3.0)
        new = study.ask(worker="elsewhere")
        study.tell(new, output=1.25, cost=7.0)
        feed.refresh(force=True)
        assert feed.rows_read == read + 1 + 2  # the old running trial and the new one, no more
        changed = client.get(f"/api/studies/s/trials?since={first['version']}").json()
        got = {t["number"]: t for t in changed["trials"]}
        assert set(got) == {running, new.number}
        assert got[running]["state"] == "COMPLETE" and got[running]["output"] == 2.5
        assert got[new.number]["worker"] == "elsewhere" and got[new.number]["cost"] == 7.0
        assert changed["progress"]["n_trials"] == 42


def test_rows_carry_what_the_table_and_plots_show(url: str) -> None:
    client, _ = _client(url)
    with client:
        data = client.get("/api/studies/s/trials").json()
    failed = [t for t in data["trials"] if t["state"] == "FAILED"]
    assert failed, "the synthetic study has failures"
    assert all(t["error"] == "loss became NaN at step 112" and t["fail_kind"] == "error"
               for t in failed)
    assert {p["name"]: p["kind"] for p in data["params"]} == {
        "lr": "log", "width": "log", "dropout": "linear", "optimizer": "choice"}
    done = next(t for t in data["trials"] if t["state"] == "COMPLETE")
    assert set(done["params"]) == {"lr", "width", "dropout", "optimizer"}
    assert done["cost"] > 0 and math.isfinite(done["output"])


def test_analysis_extrapolation_and_trial(url: str) -> None:
    client, feeds = _client(url)
    with client:
        assert client.get("/api/studies/s/extrapolate?cost=100").status_code == 409  # not ready
        client.get("/api/studies/s/trials")
        feed = feeds.get("s")
        feed.analysis_state()
        for _ in range(600):
            _version, summary = feed.summary()
            if summary is not None and summary["n_bootstrap"] == 20:
                break
            time.sleep(0.05)
        data = client.get("/api/studies/s/analysis").json()
        assert data["summary"]["n_trials"] == 40
        assert set(data["summary"]["laws"]) <= {"lr", "width", "dropout"}
        assert len(data["summary"]["curves"]["cost"]) == 80
        ext = client.get("/api/studies/s/extrapolate?cost=12345").json()
        assert ext["target_cost"] == 12345
        for bad in ("-1", "abc", "nan", ""):
            r = client.get(f"/api/studies/s/extrapolate?cost={bad}")
            assert r.status_code == 400 and "cost" in r.json()["error"]
        trial = client.get("/api/studies/s/trials/3").json()
        assert trial["number"] == 3 and "stderr_tail" in trial and trial["metric"] == "val_loss"
        assert client.get("/api/studies/s/trials/999").status_code == 404
        missing = client.get("/api/studies/nope/trials")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_pages_are_read_only_and_served_from_the_package(url: str) -> None:
    client, _ = _client(url)
    with client:
        for path in ("/", "/studies/s", "/studies/s/trials/0"):
            page = client.get(path)
            assert page.status_code == 200 and 'id="app"' in page.text
            assert "http://" not in page.text and "https://" not in page.text
        js = client.get("/static/plotly.min.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000
        assert client.get("/static/dashboard.js").status_code == 200
        assert client.get("/static/../app.py").status_code == 404
        for path in ("/api/studies", "/api/studies/s/trials"):
            assert client.post(path).status_code == 405
            assert client.delete(path).status_code == 405


def test_token_is_required_when_set(url: str) -> None:
    client, _ = _client(url, token="s3cret")
    with client:
        denied = client.get("/api/studies")
        assert denied.status_code == 401 and "token" in denied.text
        assert client.get("/api/studies?token=wrong").status_code == 401
        assert client.get("/api/studies", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        page = client.get("/studies/s?token=s3cret")
        assert page.status_code == 200
        # The cookie set with the page lets the page's own requests through.
        assert client.get("/api/studies").status_code == 200


def test_token_policy() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    assert access_token("127.0.0.1", None) is None
    assert access_token("127.0.0.1", "mine") == "mine"
    made = access_token("0.0.0.0", None)
    assert made and len(made) >= 24 and made != access_token("0.0.0.0", None)
    with pytest.raises(ValueError, match="token"):
        access_token("0.0.0.0", "  ")


def test_storage_that_cannot_be_opened_fails_before_serving(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    # The command says so and exits with the storage code, without starting a server.
    proc = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "dashboard", "--storage", str(missing), "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "does not exist" in proc.stderr and "nope.db" in proc.stderr
    assert "carbs dashboard:" not in proc.stdout
    assert not missing.exists()  # a mistyped path never becomes an empty database
    bad = subprocess.run(
        [sys.executable, "-m", "carbs.cli", "dashboard", "--storage",
         "postgresql+psycopg://nobody@127.0.0.1:1/none", "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 3 and "cannot open storage" in bad.stderr, bad.stderr


def test_summary_is_what_the_report_and_scaling_show(url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from carbs.analysis import ScalingAnalysis
    from carbs.analysis.report import render_report
    from carbs.analysis.summary import summarize
    from carbs.cli import main

    study = carbs.load_study("s", url)
    analysis = ScalingAnalysis.from_study(study, n_bootstrap=30)
    data = summarize(analysis, 500.0)
    json.dumps(data, allow_nan=False)  # strict JSON
    page = render_report(analysis, target_cost=500.0)
    embedded = page.split('id="carbs-analysis">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded.replace("<\\/", "</")) == data
    assert main(["scaling", "--storage", url, "--study", "s", "--bootstrap", "30",
                 "--target-cost", "500", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {k: v for k, v in data.items() if k != "curves"}
    assert [p["name"] for p in data["params"]] == [p.name for p in demo_params()]


def test_curves_are_read_incrementally(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("carbs.dashboard.data.REFRESH_INTERVAL", 0.0)  # every request reads
    storage = Storage(url)
    reads: list[list[int] | None] = []
    real = storage.intermediate_values

    def spy(study_id: int, numbers: Any = None) -> Any:
        reads.append(None if numbers is None else sorted(numbers))
        return real(study_id, numbers)

    monkeypatch.setattr(storage, "intermediate_values", spy)
    feeds = Feeds(storage, run=lambda fn, job: fn(*job))
    study = carbs.load_study("s", storage)
    with TestClient(create_app(storage, feeds=feeds)) as client:
        empty = client.get("/api/studies/s/curves").json()
        assert empty == {"available": True, "version": 0, "curves": {}}
        running = 40  # fill_study left trial 40 running
        for step in range(3):
            study.report(running, 3.0 - step, step, cost=10.0 * (step + 1))
        other = study.ask(worker="w")
        study.report(other, 2.0, 0, cost=5.0)
        first = client.get("/api/studies/s/curves?since=0").json()
        assert set(first["curves"]) == {str(running), str(other.number)}
        assert [p["step"] for p in first["curves"][str(running)]] == [0, 1, 2]
        assert first["curves"][str(running)][2] == {"step": 2, "value": 1.0, "cost": 30.0}
        # One more step of one trial: only its curve is read and sent again.
        study.report(running, 0.5, 3, cost=40.0)
        later = client.get(f"/api/studies/s/curves?since={first['version']}").json()
        assert set(later["curves"]) == {str(running)} and len(later["curves"][str(running)]) == 4
        assert reads == [sorted([running, other.number]), [running]]
        assert client.get(f"/api/studies/s/curves?since={later['version']}").json()["curves"] == {}
        assert reads == [sorted([running, other.number]), [running]]  # nothing grew: nothing read
        # The trial page carries its own curve.
        assert len(client.get(f"/api/studies/s/trials/{running}").json()["curve"]) == 4
        assert client.get("/api/studies/s/trials/3").json()["curve"] == []
