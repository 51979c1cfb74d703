"""``carbs dashboard`` in a real headless Chromium: pages, the live front, the token.

Uses Debian's ``/usr/bin/chromium`` through Playwright like the report's
browser test (skips without it unless ``CARBS_REQUIRE_BROWSER=1``). One
dashboard process serves every test of the module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("plotly")

from test_report_browser import CHROMIUM, CHROMIUM_ARGS, _need_browser

import carbs
from benchmarks.dashboard import fill_study, start_dashboard

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _need_browser(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need_browser("the playwright package is not installed")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'carbs.db'}"
    fill_study(url, "live", 120, seed=5, running=1)
    fill_study(url, "other", 12, seed=6)
    return url


@pytest.fixture(scope="module")
def server(storage_url: str) -> Iterator[str]:
    proc, base = start_dashboard(storage_url, os.environ.copy(), "--bootstrap", "20")
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Watched:
    """A page with its console errors and every URL it requested."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))


@pytest.fixture()
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    try:
        yield w
    finally:
        w.context.close()


def _finished(storage_url: str, name: str = "live") -> dict[int, str]:
    study = carbs.load_study(name, storage_url)
    return {t.number: str(t.state) for t in study.trials() if str(t.state) != "RUNNING"}


PARETO_NUMBERS = """() => { const d = document.getElementById('pareto');
  if (!d || !d.data) return null;
  const pts = d.data.filter(t => t.name === 'trials' || /^(failed|stopped)/.test(t.name));
  return pts.flatMap(t => Array.from(t.customdata)); }"""


def test_pages_load_offline_without_errors(server: str, storage_url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server)
    page.wait_for_selector("#studies table")
    rows = page.locator("#studies tbody tr")
    assert rows.count() == 2
    assert "live" in rows.nth(0).inner_text() and "other" in rows.nth(1).inner_text()
    rows.nth(0).locator("a").click()
    page.wait_for_url("**/studies/live")
    page.wait_for_function("window.carbsDashboard && window.carbsDashboard.drawn")
    # The Pareto plot has one point per finished trial, each naming its trial.
    finished = _finished(storage_url)
    numbers = page.evaluate(PARETO_NUMBERS)
    assert sorted(numbers) == sorted(finished)
    # The trials table: 50 rows a page, every trial counted, running ones included.
    assert page.locator("#trials tbody tr").count() == 50
    assert "of 121" in page.locator("#table-info").inner_text()
    # Every numeric parameter has its plot; failures by region has a row per parameter.
    for name in ("lr", "width", "dropout"):
        assert page.evaluate(f"document.getElementById('param-{name}').data.length") >= 2
    assert page.evaluate("document.getElementById('failures').data[0].y.length") == 4
    # No trial reported intermediate values: the curves panel stays hidden.
    assert page.locator("#curves-section").is_hidden()
    page.goto(server + "studies/live/trials/7")
    page.wait_for_selector("#trial-state")
    assert page.locator("#trial-state").inner_text().startswith(finished[7])
    assert "lr" in page.locator("main").inner_text()
    assert watched.errors == []
    outside = [u for u in watched.requests if not u.startswith(server) and not u.startswith("data:")]
    assert outside == [], f"the dashboard reached beyond its server: {outside[:5]}"
    # A study that does not exist says so (and stops asking).
    page.goto(server + "studies/nope")
    page.wait_for_selector("#not-found")
    assert "no study named 'nope'" in page.locator("#not-found").inner_text()


def test_hover_shows_parameters_and_click_opens_the_trial(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "studies/live")
    page.wait_for_function("window.carbsDashboard && window.carbsDashboard.drawn")
    # A point of the front: always inside the plotted range (outliers of the cloud may not be).
    point = page.locator("#pareto .scatterlayer .trace").nth(1).locator("path.point").nth(3)
    box = point.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_selector("#pareto .hoverlayer .hovertext")
    text = page.locator("#pareto .hoverlayer").text_content() or ""
    assert "lr=" in text and "width=" in text and "output" in text
    match = re.search(r"trial (\d+)", text)
    assert match, text
    number = int(match.group(1))
    page.mouse.click(x, y)
    page.wait_for_url(f"**/studies/live/trials/{number}")
    page.wait_for_selector("#trial-state")
    assert watched.errors == []


def test_a_trial_finished_elsewhere_appears_without_reload(
    server: str, storage_url: str, watched: Watched
) -> None:
    page = watched.page
    page.goto(server + "studies/live")
    page.wait_for_function("window.carbsDashboard && window.carbsDashboard.drawn")
    page.evaluate("window.__sameDocument = true")
    before = len(page.evaluate(PARETO_NUMBERS))
    study = carbs.load_study("live", storage_url)
    trial = study.ask(worker="another-process")
    study.tell(trial, output=0.5, cost=20000.0)  # a new best at a new cost: on the front
    page.wait_for_function(
        f"() => {{ const n = ({PARETO_NUMBERS})(); return n && n.includes({trial.number}); }}",
        timeout=30_000)
    assert len(page.evaluate(PARETO_NUMBERS)) == before + 1
    front = page.evaluate(
        "document.getElementById('pareto').data.find(t => t.name === 'Pareto front').customdata")
    assert trial.number in list(front)
    assert page.locator("#trials tbody tr").first.get_attribute("data-number") == str(trial.number)
    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert watched.errors == []


def test_table_sorts_and_filters_and_extrapolates(server: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "studies/live")
    page.wait_for_function("window.carbsDashboard && window.carbsDashboard.summary")
    page.locator("#trials th[data-key='cost']").click()
    costs = page.eval_on_selector_all(
        "#trials tbody tr", "rows => rows.map(r => r.children[3].textContent)")
    values = [float(c) for c in costs if c != "—"]
    assert values == sorted(values) and len(values) == 50
    page.fill("#filter", "nan at step")
    page.wait_for_function("document.querySelectorAll('#trials tbody tr').length > 0")
    states = page.eval_on_selector_all("#trials tbody tr", "rows => rows.map(r => r.children[1].textContent)")
    assert states and all(s.startswith("FAILED") for s in states)
    page.select_option("#state-filter", "COMPLETE")
    assert "no trials match" in page.locator("#table-info").inner_text()
    page.fill("#target-cost", "500000")
    page.press("#target-cost", "Enter")
    page.wait_for_function("document.getElementById('extrapolation').textContent.includes('500000')")
    text = page.locator("#extrapolation").inner_text()
    assert "above the observed cost range" in text and "lr" in text
    page.fill("#target-cost", "-4")
    page.click("#extrapolate")
    assert "must be a number > 0" in page.locator("#extrapolation").inner_text()
    assert watched.errors == []


def test_token_is_required(storage_url: str, watched: Watched) -> None:
    proc, link = start_dashboard(storage_url, os.environ.copy(), "--token", "tok-123")
    assert link.endswith("/?token=tok-123")  # the address printed at start carries the token
    base = link.split("?")[0]
    try:
        page = watched.page
        denied = page.goto(base + "studies/live")
        assert denied is not None and denied.status == 401
        assert "token" in page.locator("body").inner_text()
        ok = page.goto(base + "studies/live?token=tok-123")
        assert ok is not None and ok.status == 200
        page.wait_for_function("window.carbsDashboard && window.carbsDashboard.drawn")
        assert page.locator("#trials tbody tr").count() == 50  # its API calls got through
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # The 401 of the first visit is the only error the page logged.
    assert all("401" in e for e in watched.errors), watched.errors


def test_learning_curves_appear_live(server: str, storage_url: str, watched: Watched) -> None:
    page = watched.page
    page.goto(server + "studies/live")
    page.wait_for_function("window.carbsDashboard && window.carbsDashboard.drawn")
    assert page.locator("#curves-section").is_hidden()
    study = carbs.load_study("live", storage_url)
    trial = study.ask(worker="curve-writer")
    for step in range(4):
        study.report(trial, 3.0 - 0.5 * step, step, cost=2.0 * (step + 1))
    page.wait_for_selector("#curves-section:not(.hidden)", timeout=30_000)
    page.wait_for_function(
        f"() => {{ const d = document.getElementById('curves');"
        f" return d.data && d.data.some(t => t.name === 'trial {trial.number}' && t.x.length === 4); }}",
        timeout=30_000)
    study.report(trial, 1.2, 4, cost=10.0)  # the curve grows while the page is open
    page.wait_for_function(
        f"() => document.getElementById('curves').data.some(t => t.name === 'trial {trial.number}'"
        " && t.x.length === 5)", timeout=30_000)
    page.goto(server + f"studies/live/trials/{trial.number}")
    page.wait_for_function("document.getElementById('trial-curve') && "
                           "document.getElementById('trial-curve').data[0].x.length === 5")
    study.tell(trial, output=1.1, cost=12.0)
    assert watched.errors == []
