"""The HTML report opened in a real headless Chromium: it renders, offline, without errors.

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` Python package
(never ``playwright install``: the system browser is used). The tests skip
when either is missing, unless ``CARBS_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carbs import ChoiceSpace, LogSpace, ObservationInParam, Param
from carbs.analysis import ScalingAnalysis, analyze

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Pages may only load from the file itself and inline data.
ALLOWED_SCHEMES = ("file:", "data:", "about:")

pytestmark = pytest.mark.browser


def _need_browser(reason: str) -> None:
    if os.environ.get("CARBS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CARBS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


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


def _study(n: int = 90, seed: int = 0) -> list[ObservationInParam]:
    """A minimising study whose best ``lr`` falls and best ``width`` grows with cost."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        c = float(10 ** rng.uniform(0, 4))
        miss = 0.0 if rng.random() < 0.4 else 1.0
        values = {
            "lr": float(min(0.1 * c**-0.3 * 10 ** rng.normal(0, 0.03 + 0.6 * miss), 1.0)),
            "width": int(np.clip(round(4 * c**0.5 * 10 ** rng.normal(0, 0.4 * miss)), 1, 10**6)),
            "opt": "adam" if rng.random() < 0.7 else "sgd",
        }
        loss = 1.0 + 3.0 * c**-0.25 + miss * float(rng.uniform(0.05, 1.5))
        failed = bool(rng.random() < 0.06)
        out.append(ObservationInParam(values, math.nan if failed else loss, c, failed))
    return out


PARAMS = [
    Param("lr", LogSpace(min=1e-6, max=1.0), search_center=1e-3),
    Param("width", LogSpace(min=1, max=1e6, is_integer=True), search_center=64),
    Param("opt", ChoiceSpace(["adam", "sgd"]), search_center="adam"),
]


@pytest.fixture(scope="module")
def analysis() -> ScalingAnalysis:
    return analyze(_study(), PARAMS, better_direction_sign=-1, n_bootstrap=200)


def _pixel_spread(png: Path) -> tuple[float, int]:
    """Standard deviation of the grey levels (0-255) and the number of distinct colours."""
    from matplotlib import image

    rgb = (np.asarray(image.imread(png))[..., :3] * 255).round().astype(np.uint32)
    # One integer per colour: np.unique on rows of a tall screenshot is very slow.
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return float(rgb.mean(axis=-1).std()), int(np.unique(packed).size)


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_report_renders_offline_in_chromium(
    browser: Any, analysis: ScalingAnalysis, tmp_path: Path, image_format: str
) -> None:
    from carbs.analysis.report import SECTIONS, write_report

    path = write_report(analysis, tmp_path / "report.html", study_name="browser-check",
                        target_cost=1e6, image_format=image_format)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(path.as_uri(), wait_until="load")
        shot = tmp_path / f"report-{image_format}.png"
        page.screenshot(path=str(shot), full_page=True)
        for sid, label in SECTIONS:
            heading = page.locator(f"section#{sid} > h2")
            assert heading.is_visible(), f"section {sid!r} is not visible"
            assert heading.inner_text().strip() == label
        assert page.title() == "CARBS study report"
        assert "browser-check" in page.locator("#summary").inner_text()
        # Every figure drew: the PNGs decoded, or the inline SVGs have a size.
        if image_format == "png":
            sizes = page.eval_on_selector_all(
                "figure img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
            )
        else:
            sizes = page.eval_on_selector_all(
                "figure svg", "svgs => svgs.map(s => s.getBoundingClientRect().width)"
            )
        assert len(sizes) == 3 and all(s > 200 for s in sizes), sizes
        rows = page.locator("#scaling table").first.locator("tbody tr").count()
        assert rows == 2  # lr and width; opt is categorical
        data = page.evaluate(
            "JSON.parse(document.getElementById('carbs-analysis').textContent)"
        )
        assert data["extrapolation"]["target_cost"] == 1e6
        assert set(data["laws"]) == {"lr", "width"}
    finally:
        context.close()
    keep = os.environ.get("CARBS_REPORT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    assert console_errors == []
    outside = [u for u in requests if not u.startswith(ALLOWED_SCHEMES)]
    assert outside == [], f"the report tried to reach the network: {outside[:5]}"
    assert any(u.startswith("file:") for u in requests)
    spread, colours = _pixel_spread(shot)
    assert spread > 10.0 and colours > 100, (spread, colours)
