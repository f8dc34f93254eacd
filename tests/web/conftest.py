"""Browser fixtures: the system Chromium driven by Playwright against pytest-django's live server.

Chromium is Debian's package at /usr/bin/chromium (``make browser`` installs it). When
it is missing the browser tests fail with that message: they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Set WEB_SCREENSHOTS=/some/dir to keep a PNG of each page the browser tests look at.
SCREENSHOTS = os.environ.get("WEB_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's 'chromium' "
            "package (run `make browser`, or `apt-get install chromium` as root)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread while it lives;
    # Django would take every ORM call of the test for one made from async code. Only
    # for the browser tests' module, so that every other test keeps Django's check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield instance
            finally:
                instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_problems() -> list[str]:
    """Every script error and failed load (a missing static file, a broken htmx call) of
    the ``page`` fixture's page: tests assert there was none."""
    return []


@pytest.fixture
def page(browser, live_server, page_problems) -> Iterator[object]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1360, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and page_problems.append(m.text))
    page.on("pageerror", lambda e: page_problems.append(str(e)))
    try:
        yield page
    finally:
        # Stop the pages' htmx polling (inbox badge, run progress) and let a request
        # already in flight finish, so the database flush that follows never races it.
        for open_page in context.pages:
            open_page.goto("about:blank")
        page.wait_for_timeout(500)
        context.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, "name")`` keeps a PNG when WEB_SCREENSHOTS names a folder."""

    def take(page, name: str) -> None:
        if SCREENSHOTS:
            folder = Path(SCREENSHOTS)
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take
