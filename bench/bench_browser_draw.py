"""How long each dashboard page takes to draw in a real browser, moving between pages in the app
as a person does: the cold first load of a fresh server, each page's first visit through the
sidebar, then the median of three later visits; and Compare's first visit on a sweep.

    bin/setup-env && .venv/bin/python bench/bench_browser_draw.py [--runs N]

Serves the dashboard (no worker) on a temporary store holding every kind of run (the browser
test's, tests/ui_store.py, and a finished sweep), or, with ``--runs N``, bench/bench_pages.py's
big store of N runs × 50 epochs; drives Debian's Chromium through the browser test's helpers.
A page counts as drawn when its title is shown, Streamlit is idle and every chart has its SVG.
Prints seconds with the machine's load average. Not a test: the figures depend on the machine
and its load. bench/bench_pages.py times the server side alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import ui_store  # noqa: E402 - after the sys.path insert above
from test_browser import chromium_page, serve  # noqa: E402 - after the sys.path insert above

PAGES = {"Launch": "Launch runs", "Runs": "Runs", "Compare": "Compare", "Playground": "Playground"}  # link → title


def drawn(page, title: str) -> None:
    """Wait until the page titled ``title`` is drawn: its title, Streamlit idle, every chart's SVG."""
    page.get_by_role("heading", name=title, exact=True).wait_for()
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
    charts = page.locator(".js-plotly-plot")
    for index in range(charts.count()):
        charts.nth(index).locator(".main-svg").first.wait_for(state="attached")


def time_to_draw(page, title: str, how) -> float:
    """Seconds from ``how`` (a click or a navigation) to the page titled ``title`` drawn."""
    started = time.perf_counter()
    how()
    drawn(page, title)
    return time.perf_counter() - started


def visit(page, name: str) -> float:
    return time_to_draw(page, PAGES[name], lambda: page.get_by_role("link", name=name, exact=True).first.click())


def tour_timings(page, base: str, sweep_id: int) -> dict[str, dict[str, float]]:
    """The cold first load (Launch), each page's first visit through the sidebar in the tour's
    order, three more rounds of visits (medians), then Compare on the sweep."""
    figures: dict[str, dict[str, float]] = {name: {} for name in PAGES}
    figures["Launch"]["first"] = time_to_draw(page, PAGES["Launch"], lambda: page.goto(base))
    for name in ("Runs", "Compare", "Playground"):
        figures[name]["first"] = visit(page, name)
    later: dict[str, list[float]] = {name: [] for name in PAGES}
    for _ in range(3):
        for name in PAGES:
            later[name].append(visit(page, name))
    for name, seconds in later.items():
        figures[name]["later (median of 3)"] = statistics.median(seconds)
    figures["Compare"]["sweep"] = time_to_draw(page, PAGES["Compare"],
                                               lambda: page.goto(f"{base}/compare?sweep={sweep_id}"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="bench_pages.py's big store of this many runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seqcopy-bench-browser-") as folder:
        database = f"sqlite:///{Path(folder) / 'filled.db'}"
        if args.runs:
            sys.path.insert(0, str(ROOT / "bench"))
            import bench_pages

            bench_pages.fill(database, args.runs, 50)
            sweep_id = bench_pages.group_into_sweeps(database, args.runs)[0]
        else:
            sweep_id, _ = ui_store.add_sweep(database)  # first: fill leaves a run queued
            ui_store.fill(database)
        for base, _, _ in serve(Path(folder), database, with_worker=False):
            with chromium_page() as page:
                figures = tour_timings(page, base, sweep_id)
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, store: "
          + (f"{args.runs} runs × 50 epochs" if args.runs else "every kind of run and a sweep"))
    print(f"{'seconds to draw, in Chromium':30} {'first':>7} {'later':>7} {'sweep':>7}")
    for name, seconds in figures.items():
        cells = [seconds.get(what) for what in ("first", "later (median of 3)", "sweep")]
        print(f"{name:30} " + " ".join(f"{value:7.2f}" if value is not None else f"{'':7}" for value in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
