"""Finding: `GET /metrics` let any client key in, and its text holds every key's name with its
sessions, seconds and spend (dispatcher/usage/key_metrics.py) and the deployment's live sessions and
cost per release, while `GET /usage` refuses a client another key's figures. Now only an admin key
reads it (a scraper's bearer); a client key is refused 403 with the route for its own figures.
Through the real app, with stand-in bots and two named client keys."""

from __future__ import annotations

from typing import Any

from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, TEAM_B, bearer, keys
from tests.dispatcher.conftest import make_api  # noqa: F401 (fixture: a real app with stand-in bots)
from tests.support.waiting import within

TEAM_A_SERIES = 'voicefleet_key_sessions_total{key="team-a"} 1.0'


async def test_a_client_key_reads_neither_another_keys_usage_nor_the_metrics(make_api) -> None:  # noqa: F811
    async with keys(make_api) as api:
        started = await api.post("/start?wait=started", json={}, headers=bearer(TEAM_A))
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        assert (await api.delete(f"/sessions/{session_id}", headers=bearer(TEAM_A))).status_code in (202, 204)

        async def counted() -> tuple[str] | None:
            answer = await api.get("/metrics", headers=bearer(ADMIN))
            assert answer.status_code == 200, answer.text
            return (answer.text,) if TEAM_A_SERIES in answer.text else None

        found = await within(counted, timeout=30)
        assert found is not None, "team-a's ended session never counted in /metrics"  # the admin reads it all
        assert "voicefleet_active_sessions{" in found[0]

        assert (await api.get("/usage?key=team-a", headers=bearer(TEAM_B))).status_code == 403  # the rule
        refused = await api.get("/metrics", headers=bearer(TEAM_B))
        assert refused.status_code == 403, refused.text[:300]
        error: dict[str, Any] = refused.json()["error"]
        assert error["code"] == "admin_key_required" and "GET /usage" in error["message"], error
        assert "team-a" not in refused.text and "voicefleet_" not in refused.text
        own = (await api.get("/usage", headers=bearer(TEAM_A))).json()  # the way it names: its own figures
        assert own["key"] == "team-a" and own["totals"]["sessions"] == 1
        assert (await api.get("/metrics")).status_code == 401
        assert (await api.get("/metrics", headers=bearer("no-such-key-0123"))).status_code == 401


async def test_a_keyless_local_dispatcher_still_shows_its_one_caller_the_metrics(make_api) -> None:  # noqa: F811
    async with make_api() as api:
        answer = await api.get("/metrics")
        assert answer.status_code == 200 and "voicefleet_session_starts_total" in answer.text
