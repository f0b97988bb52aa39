"""Shared pytest configuration: the ``browser`` marker (end-to-end tests in Chromium), and the
project root on sys.path so that plain ``pytest`` (not only ``python -m pytest``) imports seqcopy."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: end-to-end test in a real browser (Chromium via Playwright)")
