"""Shared pytest configuration: the ``browser`` marker (end-to-end tests in Chromium)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: end-to-end test in a real browser (Chromium via Playwright)")
