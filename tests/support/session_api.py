"""A dispatcher's HTTP API as a caller of one provider's sessions uses it in the provider session tests
(tests/dispatcher/machines/test_*_session.py): each call fails with the dispatcher's log.

The calls share one client (thread-safe: a test's threads may call too), its connections kept: a client
made per call builds an SSL context from the CA bundle, ~60 ms of CPU each, which a test of a few
hundred starts on a loaded machine pays in minutes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.processes import DispatcherProcess
from tests.support.waiting import wait_until

# /metrics is an admin key's: a dispatcher whose metrics a test reads is given this one too.
METRICS_KEY = "metrics-admin-key-0123456789abcdef"
METRICS_ADMIN = {"DISPATCHER_ADMIN_KEYS": METRICS_KEY}
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_KEY}"}


class SessionApi:
    def __init__(self, running: DispatcherProcess, *, key: str, provider: str, deadline: float = 60.0) -> None:
        self.running, self.url = running, running.base_url
        self._auth = {"Authorization": f"Bearer {key}"}
        self._provider, self._deadline = provider, deadline
        self._http = httpx.Client(timeout=deadline)

    def wait_for(self, what: str, condition: Any) -> Any:
        return wait_until(condition, what, timeout=self._deadline, detail=lambda: self.running.log()[-4000:])

    def call(self, method: str, path: str, expected: tuple[int, ...] = (200,), **kw: Any) -> httpx.Response:
        answer = self._http.request(method, self.url + path, headers={**self._auth, **kw.pop("headers", {})}, **kw)
        assert answer.status_code in expected, f"{method} {path}: {answer.text}\n{self.running.log()[-4000:]}"
        return answer

    def start(self, expected: tuple[int, ...] = (201,)) -> httpx.Response:
        return self.call("POST", "/start?wait=started", expected, json={})

    def started(self) -> str:
        """A new session's id, its bot running."""
        return str(self.start().json()["session_id"])

    def answered_by(self, session_id: str) -> str:
        """Who answered the caller's offer: the bot's session and process id."""
        return str(self.call("POST", f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
                   .json()["bot"])

    def idle_bots(self) -> float:
        line = f'voicefleet_reserve_bots{{provider="{self._provider}",state="idle"}}'
        metrics = self.call("GET", "/metrics", headers=METRICS_AUTH).text
        return sum(float(row.rsplit(" ", 1)[1]) for row in metrics.splitlines() if row.startswith(line))
