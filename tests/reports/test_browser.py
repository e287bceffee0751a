"""The report page in a real browser: Debian's headless Chromium, driven by Playwright.

Every section is shown, the page logs no console error and fetches nothing, and every plot has visible pixels in
a screenshot of the rendered page. Without /usr/bin/chromium the test is skipped, except in CI (``CI`` set), where
`.ci/run` installs it and its absence is a failure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.reports.test_report import PLOTS, SECTIONS

CHROMIUM = Path("/usr/bin/chromium")
# The flags a closed network needs: no background connections, no first-run work, a fresh profile.
FLAGS = ["--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]  # fmt: skip


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, headless with `FLAGS`; the test skips where it is absent (fails in CI,
    whose .ci/run installs it)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run should have installed Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is absent: `apt-get install chromium` to run the real-browser test")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as launched:
        yield launched


def _open(browser, page_file: Path, shots: Path):
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a common laptop screen
    problems, requests = [], []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_file.as_uri(), wait_until="load")
    page.screenshot(path=str(shots / f"{page_file.stem}-top.png"))
    page.screenshot(path=str(shots / f"{page_file.stem}-full.png"), full_page=True)
    return page, problems, requests


def _plot_pixels(page, name: str) -> np.ndarray:
    image = page.locator(f'img[data-plot="{name}"]')
    image.scroll_into_view_if_needed()
    assert image.evaluate("element => element.complete && element.naturalWidth > 0"), f"{name} did not decode"
    return np.asarray(Image.open(io.BytesIO(image.screenshot())).convert("L"))


def test_report_in_chromium(browser, tiny_run, tmp_path):
    page, problems, requests = _open(browser, tiny_run / "report.html", tmp_path)
    for section in SECTIONS:
        assert page.locator(f"section#{section}").is_visible(), f"section {section} is not shown"
        assert page.locator(f"nav a[href='#{section}']").count() == 1
    for name in PLOTS:
        pixels = _plot_pixels(page, name)
        box = page.locator(f'img[data-plot="{name}"]').bounding_box()
        assert box["width"] >= 300, f"{name} is drawn {box['width']} px wide"
        assert box["x"] + box["width"] <= 1366, f"{name} runs off a laptop screen"
        assert (pixels < 200).mean() > 0.01 and pixels.std() > 20, f"{name} is blank on screen"
    assert page.locator("#headline .card").count() == 6
    assert not problems, problems
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    # the page is read on a laptop: nothing wider than the window
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_comparison_in_chromium(browser, tiny_run, tiny_cxr3_run, tmp_path):
    from medtune.reports import create_comparison

    page_file = create_comparison([tiny_run, tiny_cxr3_run], tmp_path / "comparison.html")
    page, problems, requests = _open(browser, page_file, tmp_path)
    assert page.locator("section#comparison table tbody tr").count() == 2
    for name in ("curve_loss", "curve_auc"):
        pixels = _plot_pixels(page, name)
        assert (pixels < 200).mean() > 0.01, f"{name} is blank on screen"
    assert not problems, problems
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
