"""Finding: `GET /usage` with several regions added whatever answered a peer's relayed `/usage` (that
answer is not signed: whoever sits on the path to the peer's URL writes it, while the peer's own
signed state keeps it reachable). Totals that were not an object, or a number JSON allows and a
response does not (NaN, Infinity), or an answer nested past the interpreter's limit turned the
admin's question into a 500; a negative count was taken off the deployment's sums. Now an answer
that is not usage (each sum a finite number at least 0) names its region in `unreachable_regions`
and adds nothing, as a region that is down does.

Two real dispatchers on loopback; "us" is reached through a stand-in on the path that passes every
request to the real "us" (its signed state too) and rewrites only `/usage` answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.regions.support import region_env
from tests.regions.test_usage_regions import ADMIN_KEY
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.threaded_http import QuietHandler, send, serving
from tests.support.waiting import wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ANSWERS: dict[str, bytes] = {
    "totals_a_list": b'{"by": "key", "rows": [], "totals": [1, 2]}',
    "a_nan_total": b'{"by": "key", "rows": [], "totals": {"sessions": NaN, "cost_usd": Infinity}}',
    "a_negative_row": b'{"by": "key", "rows": [{"key": "acme", "sessions": -1000, "cost_usd": -5000.0}],'
                      b' "totals": {"sessions": -1000, "cost_usd": -5000.0}}',
    "nested_deep": b'{"by": "key", "rows": [], "totals": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
}


class Rewritten:
    usage = b""  # what the path answers a /usage in place of the peer


@contextmanager
def on_the_path(target: str) -> Iterator[tuple[str, type[Rewritten]]]:
    """Passes each request to `target` as it came; a `/usage` is answered `Rewritten.usage` instead."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/usage"):
                send(self, 200, Rewritten.usage, {"Content-Type": "application/json"})
                return
            self._pass()

        def do_POST(self) -> None:  # noqa: N802
            self._pass()

        def _pass(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = httpx.request(self.command, target + self.path, headers=headers, content=body or None,
                                   timeout=10)
            send(self, answer.status_code, answer.content, {k: v for k, v in answer.headers.items() if k.lower()
                                                           not in ("content-length", "transfer-encoding", "connection",
                                                                   "content-encoding")})

    with serving(Handler) as url:
        yield url, Rewritten


def usage(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/usage", headers=ADMIN, timeout=60)


@pytest.fixture(scope="module")
def eu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path: Path = tmp_path_factory.mktemp("regions")
    us_port, eu_port = free_port(), free_port()
    admin = {"DISPATCHER_ADMIN_KEYS": ADMIN_KEY}
    with ExitStack() as stack:
        proxy, _ = stack.enter_context(on_the_path(f"http://127.0.0.1:{us_port}"))
        urls = {"eu": f"http://127.0.0.1:{eu_port}", "us": proxy}
        stack.enter_context(run_dispatcher(tmp_path, {**region_env("us", urls), **admin}, port=us_port,
                                           log_name="us.log"))
        running = stack.enter_context(run_dispatcher(tmp_path, {**region_env("eu", urls), **admin}, port=eu_port,
                                                     log_name="eu.log"))
        Rewritten.usage = b'{"by": "key", "rows": [], "totals": {"sessions": 0}}'  # as a region with no use yet

        def counted() -> dict[str, Any] | None:
            answer = usage(running.base_url)
            body: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
            return body if body.get("regions") == ["eu", "us"] else None

        wait_until(counted, "us reachable through the path and counted", timeout=60)
        yield running.base_url


@pytest.mark.parametrize("mode", sorted(ANSWERS))
def test_a_peers_usage_answer_that_is_not_usage_is_named_never_added(eu: str, mode: str) -> None:
    Rewritten.usage = ANSWERS[mode]
    answer = usage(eu)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["regions"] == ["eu"], body
    assert [u["region"] for u in body["unreachable_regions"]] == ["us"], body
    assert body["totals"].get("sessions", 0) >= 0 and body["totals"].get("cost_usd", 0) >= 0
    assert body["rows"] == [] or all(row.get("sessions", 0) >= 0 for row in body["rows"])
