"""GET /docs renders in headless Chromium from the dispatcher alone: no CDN, no other host."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic, chromium_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


async def test_the_api_explorer_renders_every_route_from_local_assets(dispatcher, tmp_path):
    mic = browser_mic(SPEECH, tmp_path / "mic.wav")
    async with Browser(dispatcher.base_url + "/docs", mic, tmp_path / "profile") as page:
        rendered = await page.wait_for("document.querySelectorAll('.opblock-summary-path').length > 0", 30)
        paths = await page.evaluate(
            "JSON.stringify([...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent))"
        )
        title = await page.evaluate("document.querySelector('.info .title')?.textContent ?? ''")
    assert rendered, "Swagger UI never rendered the OpenAPI document"
    assert "/start" in paths and "/sessions/{session_id}" in paths
    assert "voicefleet dispatcher" in title
    off_host = [url for url in page.requests if not url.startswith((dispatcher.base_url, "data:", "blob:"))]
    assert off_host == [], "the explorer must not reach any other host"
