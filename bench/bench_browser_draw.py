"""How long the Playground takes to draw in a real browser, beside the Compare page (seven charts,
no torch) in the same run: the first open after five seconds on the Runs page, the median of three
reloads and of three visits through the sidebar, and the very first request of a fresh server.

    bin/setup-env && .venv/bin/python bench/bench_browser_draw.py

Serves the dashboard (no worker) on a temporary store holding every kind of run (the browser
test's, tests/ui_store.py) and drives Debian's Chromium through the browser test's helpers.
Prints seconds and the Playground/Compare ratio with the machine's load average. Not a test:
the figures depend on the machine and its load. bench/bench_pages.py times the server side alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import ui_store  # noqa: E402 - after the sys.path insert above
from test_browser import chromium_page, plotly_charts_drawn, serve  # noqa: E402 - after the sys.path insert above

# What each timed page shows once drawn: a text and its number of charts.
DRAWN = {"Playground": ("Copied right", 1), "Compare": ("a single seed, so no band", 7)}


def time_to_draw(page, name: str, how) -> float:
    """Seconds from the request (``how`` navigates) to page ``name`` drawn and idle."""
    from playwright.sync_api import expect

    text, charts = DRAWN[name]
    started = time.perf_counter()
    how()
    expect(page.get_by_text(text).first).to_be_visible()
    plotly_charts_drawn(page, charts)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=30_000)
    return time.perf_counter() - started


def visit_timings(page, base: str, name: str) -> dict[str, float]:
    """The first open of page ``name`` after five seconds on the Runs page (a person reads it;
    the app imports torch meanwhile), then the median of three reloads and of three visits
    through the sidebar."""
    runs = page.get_by_role("heading", name="Runs")
    page.goto(f"{base}/runs")
    runs.wait_for()
    page.wait_for_timeout(5000)
    first = time_to_draw(page, name, lambda: page.get_by_role("link", name=name).click())
    reloads = [time_to_draw(page, name, lambda: page.goto(f"{base}/{name.lower()}")) for _ in range(3)]
    visits = []
    for _ in range(3):
        page.get_by_role("link", name="Runs").click()
        runs.wait_for()
        visits.append(time_to_draw(page, name, lambda: page.get_by_role("link", name=name).click()))
    return {"first open": first, "reload": statistics.median(reloads), "sidebar visit": statistics.median(visits)}


def main() -> int:
    figures = {}
    with tempfile.TemporaryDirectory(prefix="seqcopy-bench-browser-") as folder:
        database = f"sqlite:///{Path(folder) / 'filled.db'}"
        ui_store.fill(database)
        (Path(folder) / "warm").mkdir()
        for base, _, _ in serve(Path(folder) / "warm", database, with_worker=False):
            with chromium_page() as page:
                for name in ("Playground", "Compare"):
                    figures[name] = visit_timings(page, base, name)
        (Path(folder) / "fresh").mkdir()
        for base, _, _ in serve(Path(folder) / "fresh", database, with_worker=False):
            with chromium_page() as page:
                figures["Playground"]["first request of a fresh server"] = time_to_draw(
                    page, "Playground", lambda base=base: page.goto(f"{base}/playground"))
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'seconds to draw, in the browser':34} {'Playground':>10} {'Compare':>8}  ratio")
    for what, seconds in figures["Playground"].items():
        reference = figures["Compare"].get(what)
        ratio = f"{seconds / reference:5.2f}" if reference else "    –"
        print(f"{what:34} {seconds:10.2f} {reference or float('nan'):8.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
