"""A web page of another origin, in headless Chromium, posts to a keyless local dispatcher the way
any page can without asking CORS (`mode: "no-cors"`, no body): no bot starts and the releases'
weights stay as they were; a WebSocket it opens to a keyless call's stream opens nothing. Real dispatcher process, the page served on `attacker.localhost`
(Chromium sends that name to loopback itself)."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.threaded_http import serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

PAGE = """<!doctype html><title>another site</title><script>
window.outcome = null;
const dispatcher = "{dispatcher}";
const call = new Promise(done => {{  // a WebSocket asks no CORS either: a keyless call's stream
  const socket = new WebSocket(dispatcher.replace("http", "ws") + "/ws/generic/agent.org");
  socket.onopen = () => done("opened");
  socket.onclose = () => done("refused");
}});
Promise.allSettled([
  fetch(dispatcher + "/start", {{method: "POST", mode: "no-cors"}}),
  fetch(dispatcher + "/releases/rollback", {{method: "POST", mode: "no-cors"}}),
  call,
]).then(results => {{ window.outcome = results.map(r => typeof r.value === "string" ? r.value : r.status); }});
</script>"""
REFUSED = "a browser page's POST"  # dispatcher/api/cross_site.py's warning, one per request it refused


def attacker_page(dispatcher: str) -> type[BaseHTTPRequestHandler]:
    body = PAGE.format(dispatcher=dispatcher).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Page


def refusals_logged(dispatcher: DispatcherProcess, count: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while (seen := dispatcher.log().count(REFUSED)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


async def test_a_page_of_another_origin_starts_no_bot_and_rolls_nothing_back(tmp_path: Path) -> None:
    for name in ("bot.py", "bot_v2.py"):
        (tmp_path / name).write_text("async def bot(runner_args): ...\n")
    env = {"BOT_RELEASES": f"stable={tmp_path / 'bot.py'},next={tmp_path / 'bot_v2.py'}",
           "RELEASE_WEIGHTS": "stable=90,next=10", "RESERVE_MAX_IDLE": "0"}
    mic = browser_mic(SPEECH, tmp_path / "mic48k.wav")
    with run_dispatcher(tmp_path, env) as dispatcher, serving(attacker_page(dispatcher.base_url)) as site:
        evil = site.replace("127.0.0.1", "attacker.localhost") + "/evil.html"
        async with Browser(evil, mic, tmp_path / "profile") as page:
            outcome = await page.wait_for("window.outcome", 60)
        # The posts were sent (their answers are opaque); the socket was refused before it opened.
        assert outcome == ["fulfilled", "fulfilled", "refused"], outcome
        refused = refusals_logged(dispatcher, 2)  # the requests reached the dispatcher (a deadline, not a wait)
        weights = {r["name"]: r["weight"] for r in httpx.get(f"{dispatcher.base_url}/releases").json()["releases"]}
        sessions = httpx.get(f"{dispatcher.base_url}/sessions").json()["sessions"]
        log = dispatcher.log()
    assert weights == {"stable": 90, "next": 10}
    assert sessions == []
    assert refused == 2, log[-3000:]
    assert "upgrade refused (another origin's page)" in log
