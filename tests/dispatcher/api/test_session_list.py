"""`GET /sessions` on a dispatcher with real stand-in bots: a key lists its own name's sessions and
never another's, an admin key every one with its key; filters, pages and every bad query
answered 422 with the way out."""

from __future__ import annotations

import time
from typing import Any

import httpx

from dispatcher.settings import hash_api_key
from tests.support.waiting import within

TEAM_A, TEAM_A_TOO, TEAM_B, ADMIN = "a-key-0123456789", "a-second-key-01234", "b-key-0123456789", "admin-key-01234567"


def keys(make_api, **settings: object):  # type: ignore[no-untyped-def]
    named = ((hash_api_key(TEAM_A), "team-a"), (hash_api_key(TEAM_A_TOO), "team-a"), (hash_api_key(TEAM_B), "team-b"))
    return make_api(api_key_hashes=frozenset(h for h, _ in named), api_key_names=named,
                    admin_key_hashes=frozenset({hash_api_key(ADMIN)}), max_concurrent_sessions=20, **settings)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def start(api: httpx.AsyncClient, key: str) -> str:
    answer = await api.post("/start", json={}, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["session_id"])


async def listed(api: httpx.AsyncClient, key: str, count: int, query: str = "") -> list[dict[str, Any]]:
    """The key's listing once it holds `count` sessions (entries are written in the background)."""
    async def read() -> tuple[list[dict[str, Any]]] | None:
        answer = await api.get(f"/sessions{query}", headers=bearer(key))
        assert answer.status_code == 200, answer.text
        sessions: list[dict[str, Any]] = answer.json()["sessions"]
        return (sessions,) if len(sessions) == count else None

    found = await within(read, timeout=30)
    assert found is not None, f"never {count} sessions in /sessions{query}"
    return found[0]


async def test_a_key_lists_its_names_sessions_never_anothers_and_an_admin_every_one(make_api) -> None:
    async with keys(make_api) as api:
        mine = [await start(api, TEAM_A), await start(api, TEAM_A_TOO)]
        theirs = await start(api, TEAM_B)
        for key in (TEAM_A, TEAM_A_TOO):  # either key of the name: the name's sessions
            assert [s["session_id"] for s in await listed(api, key, 2)] == mine[::-1]  # newest first
        own = await listed(api, TEAM_B, 1)
        assert [s["session_id"] for s in own] == [theirs] and "key" not in own[0]
        assert own[0]["status"] == "active" and own[0]["release"] and own[0]["created"] <= time.time()
        every = await listed(api, ADMIN, 3)
        assert [(s["session_id"], s["key"]) for s in every] == [(theirs, "team-b"), (mine[1], "team-a"),
                                                              (mine[0], "team-a")]
        only_a = await listed(api, ADMIN, 2, "?key=team-a")
        assert [s["session_id"] for s in only_a] == mine[::-1]
        refused = await api.get("/sessions?key=team-b", headers=bearer(TEAM_A))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
        assert (await api.get("/sessions", headers=bearer("no-such-key"))).status_code == 401
        assert (await api.get("/sessions")).status_code == 401


async def test_filters_select_by_status_failure_release_and_time(make_api, standin_mode) -> None:
    async with keys(make_api) as api:
        stopped, running = await start(api, TEAM_A), await start(api, TEAM_A)
        assert (await api.delete(f"/sessions/{stopped}", headers=bearer(TEAM_A))).status_code in (200, 202, 204)
        ended = await listed(api, TEAM_A, 1, "?status=ended")
        assert ended[0]["session_id"] == stopped and ended[0]["ended"] >= ended[0]["created"]
        assert [s["session_id"] for s in await listed(api, TEAM_A, 1, "?status=active")] == [running]
        standin_mode("pipeline-error")
        failing = await start(api, TEAM_A)
        failed = await listed(api, TEAM_A, 1, "?failed=true")
        assert (failed[0]["session_id"], failed[0]["error"]) == (failing, "bot_error")
        release = failed[0]["release"]
        assert len(await listed(api, TEAM_A, 3, f"?release={release}")) == 3
        assert await listed(api, TEAM_A, 0, "?release=another") == []
        assert len(await listed(api, TEAM_A, 3, f"?since={time.time() - 600:.0f}")) == 3
        assert await listed(api, TEAM_A, 0, "?since=2999-01-01T00:00:00Z") == []


async def test_pages_follow_the_cursor_without_repeating_or_skipping_one(make_api) -> None:
    async with keys(make_api) as api:
        started = [await start(api, TEAM_B) for _ in range(5)]
        await listed(api, TEAM_B, 5)
        seen, cursor, sizes = [], "", []
        for _ in range(5):
            answer = (await api.get(f"/sessions?limit=2{cursor}", headers=bearer(TEAM_B))).json()
            seen += [s["session_id"] for s in answer["sessions"]]
            sizes.append(len(answer["sessions"]))
            if answer["next_cursor"] is None:
                break
            cursor = f"&cursor={answer['next_cursor']}"
        assert seen == started[::-1] and sizes == [2, 2, 1]


async def test_a_bad_query_is_answered_422_with_the_way_out(make_api) -> None:
    async with keys(make_api) as api:
        for query, says in (("limit=0", "1 to 100"), ("limit=101", "1 to 100"), ("limit=ten", "1 to 100"),
                            ("status=running", "active, ended, failed"), ("failed=yes", "true or false"),
                            ("since=yesterday", "ISO 8601"), ("cursor=not-a-cursor", "next_cursor"),
                            ("release=Bad Name", "release"), ("region=EU", "region"), ("colour=red", "takes limit"),
                            ("failed=true&status=ended", "give one of them")):
            answer = await api.get(f"/sessions?{query}", headers=bearer(TEAM_A))
            assert answer.status_code == 422, (query, answer.text)
            assert answer.json()["error"]["code"] == "invalid_request" and says in answer.json()["error"]["message"]
        bad_key = await api.get("/sessions?key=Team_A", headers=bearer(ADMIN))
        assert bad_key.status_code == 422 and "key name" in bad_key.json()["error"]["message"]
