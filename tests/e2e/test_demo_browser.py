"""The demo in headless Chromium: upload the sample, watch the four tools finish, see the
combined result and its charts; a bad upload and a failing analysis show their reasons.

Runs the real stack (stack.Stack: migrations, a prefork worker, beat, runserver) on a
database of its own. Screenshots go to a temporary folder, or to docs/ (the
documentation's pictures) with ``make screenshots``, which sets DEMO_SCREENSHOTS.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else None
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        "Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True
    )
pytest.importorskip("django")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def stack(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sys.path.insert(0, str(DEMO))
    from psycopg.conninfo import make_conninfo

    from stack import Stack, drop_database

    url = make_conninfo(dsn, dbname=f"celeriac_e2e_{uuid.uuid4().hex[:8]}")
    var = tmp_path_factory.mktemp("demo-var")
    # a file whose name contains "broken" makes the model tool raise (demo fault switch)
    running = Stack(url, var, port=0, echo=False, extra_env={"DEMO_FAULT": "model:error:broken"})
    try:
        with running:
            yield running
    finally:
        drop_database(url)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("DEMO_SCREENSHOTS") or tmp_path)


@pytest.fixture
def page(stack: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        yield context.new_page()
        browser.close()


def upload(page: Any, base: str, name: str, data: bytes) -> None:
    page.goto(base + "/")
    page.set_input_files("#id_file", {"name": name, "mimeType": "text/plain", "buffer": data})
    page.click("#submit")


def test_sample_analysed_in_parallel_with_progress_and_charts(
    page: Any, stack: Any, shots: Path
) -> None:
    sample = (DEMO / "analysis/static/analysis/reviews.txt").read_bytes()
    upload(page, stack.base, "reviews.txt", sample)
    page.wait_for_url("**/projects/*/")
    # the model-based tool takes seconds: its card shows progress before it finishes
    page.wait_for_selector("#tool-model.progress, #tool-model.success", timeout=120_000)
    page.screenshot(path=str(shots / "demo-progress.png"), full_page=True)
    for key in ("vader", "model", "emotions", "phrases"):
        page.wait_for_selector(f"#tool-{key}.success", timeout=180_000)
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    assert page.inner_text("#status") == "success"
    for chart in ("distribution", "confusion", "emotions", "phrases"):
        assert page.locator(f"#chart-{chart} svg rect").count() >= 3, chart
    assert "agree" in page.inner_text("#result")
    assert page.locator("#most-negative tr").count() >= 2
    page.click("#run-sequential")
    page.wait_for_function(
        "document.getElementById('timing-text').textContent.includes('one after another')",
        timeout=180_000,
    )
    assert "CPU core" in page.inner_text("#timing-text")
    page.screenshot(path=str(shots / "demo-result.png"), full_page=True)


def test_bad_upload_shows_its_reason(page: Any, stack: Any, shots: Path) -> None:
    upload(page, stack.base, "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    error = page.wait_for_selector("#upload-error")
    assert "looks like a binary file" in error.inner_text()
    page.screenshot(path=str(shots / "demo-bad-upload.png"))


def test_failing_analysis_shows_its_reason(page: Any, stack: Any, shots: Path) -> None:
    upload(page, stack.base, "broken-reviews.txt", b"I love it\nI hate it\n")
    page.wait_for_url("**/projects/*/")
    failure = page.wait_for_selector("#failure:not([hidden])", timeout=120_000)
    assert "Sentiment, model-based failed: RuntimeError" in failure.inner_text()
    assert page.inner_text("#status") == "failure"
    page.wait_for_selector("#tool-model.failure")
    page.screenshot(path=str(shots / "demo-failure.png"), full_page=True)
