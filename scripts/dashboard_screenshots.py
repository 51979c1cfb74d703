"""Screenshots of ``carbs dashboard`` for docs/dashboard.md, taken in headless Chromium.

Fills a temporary SQLite storage with two synthetic studies (the one shown has
400 finished trials and two still running), starts the dashboard on it and
saves the pages into ``docs/img/dashboard/``::

    python scripts/dashboard_screenshots.py [--out docs/img/dashboard]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dashboard import CHROMIUM, CHROMIUM_ARGS, fill_study, start_dashboard  # noqa: E402


def main() -> int:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'carbs.db'}"
        fill_study(url, "lm-sweep", 400, seed=1, running=2, curves=60)
        fill_study(url, "lm-sweep-small", 60, seed=2)
        proc, base = start_dashboard(url)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(base)
                page.wait_for_selector("#studies table")
                page.screenshot(path=str(args.out / "studies.png"),
                                clip={"x": 0, "y": 0, "width": 1400, "height": 240})

                page.goto(base + "studies/lm-sweep")
                # Wait for the analysis with its bootstrap intervals.
                page.wait_for_function(
                    "window.carbsDashboard && window.carbsDashboard.summary && "
                    "window.carbsDashboard.summary.n_bootstrap > 0 && window.carbsDashboard.drawn",
                    timeout=300_000,
                )
                page.wait_for_timeout(1500)
                page.screenshot(path=str(args.out / "study.png"))
                page.wait_for_selector("#curves-section:not(.hidden)")
                for section, name in (("#param-plots", "parameters"), ("#laws", "laws"),
                                      ("#curves", "curves"), ("#trials-table", "trials")):
                    # The section's heading at the top of the window.
                    page.evaluate("s => document.querySelector(s).closest('section')"
                                  ".scrollIntoView({block: 'start'})", section)
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(args.out / f"study-{name}.png"))
                page.screenshot(path=str(args.out / "study-full.png"), full_page=True)

                failed = page.evaluate(
                    "[...window.carbsDashboard.trials.values()].find(t => t.state === 'FAILED').number"
                )
                page.goto(base + f"studies/lm-sweep/trials/{failed}")
                page.wait_for_selector("#trial-state")
                page.screenshot(path=str(args.out / "trial.png"))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    for path in sorted(args.out.glob("*.png")):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
