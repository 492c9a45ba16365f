"""Headless Chromium (Debian's `chromium`) driven by Playwright; no browser download. Screenshots of each
page go to test-artifacts/screenshots/ (kept as CI artifacts)."""

import os
import shutil

import pytest

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "test-artifacts", "screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home, which this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (./dev test installs it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_url):
    """A fresh browser context (own cookies) on a phone-sized screen; `shot(name)` saves a screenshot."""
    context = browser.new_context(base_url=live_url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.shot = lambda name: page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)
    yield page
    context.close()


@pytest.fixture
def desktop_page(browser, live_url):
    context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.shot = lambda name: page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)
    yield page
    context.close()
