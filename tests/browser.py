"""A real browser for the book tests: the distribution's Chromium driven by playwright, with the network cut off so
that a page needing a CDN fails the way it would for an offline reader."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """The Chromium executable ($LGELIB_CHROMIUM, else the first of CHROMIUM_NAMES on PATH), or None."""
    return os.environ.get("LGELIB_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


@dataclass
class PageReport:
    """What loading one page showed: requests that failed or left the machine, and script errors."""

    failed_requests: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)


@contextmanager
def offline_browser(executable: str) -> Iterator[object]:
    """A headless Chromium whose pages may load file:// URLs only."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, path: Path, width: int = 1280, height: int = 1000):
    """Open ``path`` in a fresh page, network cut off; returns (page, report) once the page has loaded."""
    page = browser.new_page(viewport={"width": width, "height": height})
    report = PageReport()

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(("file://", "data:", "blob:", "about:")):
            request_route.continue_()
        else:
            report.blocked_requests.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("requestfailed", lambda request: report.failed_requests.append(request.url))
    page.on("pageerror", lambda error: report.script_errors.append(str(error)))
    page.goto(path.as_uri(), wait_until="load")
    return page, report
