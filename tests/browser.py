"""Headless Chromium for the web UI tests (tests/test_web_uis.py).

Both web UIs (optuna-dashboard, NNI's) are single-page apps that fetch their data after the page
loads, and NNI's trial table shows metric columns other than the default one only after "Add/Remove
columns", so the tests drive the distribution's Chromium (``apt-get install chromium``;
``scripts/test.sh`` installs it) through Playwright, with Playwright's own browser download never
used. Screenshots go to ``tests/artifacts/`` or ``$OFA_NNI_TEST_ARTIFACTS`` (kept by CI).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS_ENV = "OFA_NNI_TEST_ARTIFACTS"
WINDOW = {"width": 1400, "height": 1000}
# No network beyond 127.0.0.1, no first-run or background services: the page is all that runs.
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """The distribution's Chromium; skips the test (fails it under CI) where none is installed."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    reason = "Chromium is not installed: apt-get install chromium (scripts/test.sh installs it where it can)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def artifacts_dir() -> Path:
    """Where screenshots are kept: ``$OFA_NNI_TEST_ARTIFACTS`` or ``tests/artifacts/``."""
    path = Path(os.environ.get(ARTIFACTS_ENV) or Path(__file__).resolve().parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for_http(url: str, *, timeout: float, process: Any = None) -> None:
    """Wait until ``url`` answers 200; fails early if ``process`` (the server) exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with code {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A Playwright page in headless Chromium, 1400x1000."""
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=WINDOW)
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save the page as ``<artifacts>/<name>.png``: all of it, or the 1400x1000 window."""
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def page_text(page: Any) -> str:
    """The rendered text of the page, whitespace collapsed."""
    return re.sub(r"\s+", " ", page.inner_text("body"))


def wait_for_texts(page: Any, texts: Sequence[str], *, name: str, timeout: float = 60.0) -> str:
    """Wait until the page's text contains every one of ``texts``; returns the text.

    On timeout the page is saved as ``<name>-timeout.png`` and the failure lists the missing texts.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = page_text(page)
        missing = [expected for expected in texts if expected not in text]
        if not missing:
            return text
        if time.monotonic() > deadline:
            shot = screenshot(page, f"{name}-timeout")
            raise AssertionError(f"{page.url} never showed {missing} (screenshot {shot}); it shows: {text[:2000]}")
        page.wait_for_timeout(500)
