"""`GET /usage` on a dispatcher with real stand-in bots: each ended session is added as its end is
recorded; a client key reads its own key's usage only (another's: 403), an admin every key's; a bad
query or a span past 400 days is answered 422 with the way out."""

from __future__ import annotations

from typing import Any

import httpx

from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, TEAM_A_TOO, TEAM_B, bearer, keys
from tests.support.waiting import within


async def usage(api: httpx.AsyncClient, key: str, query: str = "") -> httpx.Response:
    return await api.get(f"/usage{query}", headers=bearer(key))


async def start(api: httpx.AsyncClient, key: str) -> str:
    """A session whose bot is up (its end is then the bot's own report)."""
    answer = await api.post("/start?wait=started", json={}, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["session_id"])


async def sessions_counted(api: httpx.AsyncClient, count: int) -> dict[str, Any]:
    async def read() -> tuple[dict[str, Any]] | None:
        answer = await usage(api, ADMIN)
        assert answer.status_code == 200, answer.text
        return (answer.json(),) if answer.json()["totals"]["sessions"] == count else None

    found = await within(read, timeout=30)
    assert found is not None, f"never {count} sessions in /usage"
    return found[0]


async def test_each_key_reads_its_own_usage_and_an_admin_every_keys(make_api) -> None:
    async with keys(make_api) as api:
        ended = [await start(api, TEAM_A), await start(api, TEAM_A_TOO), await start(api, TEAM_B)]
        for session_id, key in zip(ended, (TEAM_A, TEAM_A_TOO, TEAM_B), strict=True):
            assert (await api.delete(f"/sessions/{session_id}", headers=bearer(key))).status_code in (202, 204)
        every = await sessions_counted(api, 3)
        assert [(row["key"], row["sessions"]) for row in every["rows"]] == [("team-a", 2), ("team-b", 1)]
        assert every["rows"][0]["minutes"] > 0 and every["rows"][0]["cost_usd"] == 0.0  # local machines: $0
        own = (await usage(api, TEAM_B)).json()
        assert own["key"] == "team-b" and [row["key"] for row in own["rows"]] == ["team-b"]
        assert own["totals"]["sessions"] == 1
        by_release = (await usage(api, ADMIN, "?by=release")).json()
        assert [row["sessions"] for row in by_release["rows"]] == [3]
        refused = await usage(api, TEAM_A, "?key=team-b")
        assert refused.status_code == 403 and "its own key" in refused.json()["error"]["message"]
        only_b = (await usage(api, ADMIN, "?key=team-b&by=day")).json()
        assert only_b["totals"]["sessions"] == 1 and len(only_b["rows"]) == 1
        listed = (await api.get("/sessions", headers=bearer(ADMIN))).json()["sessions"]
        assert sorted(item["cost_usd"] for item in listed) == [0.0, 0.0, 0.0]  # each one's cost, listed
        metrics = (await api.get("/metrics", headers=bearer(ADMIN))).text
        assert 'voicefleet_key_sessions_total{key="team-a"} 2.0' in metrics
        assert 'voicefleet_key_sessions_total{key="team-b"} 1.0' in metrics


def test_per_key_metrics_keep_a_bounded_number_of_keys() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from dispatcher.usage.key_metrics import OTHER_KEY, KeyUsageMetrics

    registry = CollectorRegistry()
    metrics = KeyUsageMetrics(registry, max_keys=3)
    for n in range(10):  # runtime keys made at will: past the bound, one `other` series
        metrics.ended(f"key-{n}", seconds=60.0, dollars=0.01)
    metrics.ended("key-0", seconds=60.0, dollars=0.01)  # a key already seen keeps its own
    text = generate_latest(registry).decode()
    series = [line for line in text.splitlines() if line.startswith("voicefleet_key_sessions_total{")]
    assert len(series) == 4 and f'voicefleet_key_sessions_total{{key="{OTHER_KEY}"}} 7.0' in series
    assert 'voicefleet_key_sessions_total{key="key-0"} 2.0' in series


async def test_a_bad_query_is_refused_with_the_way_out(make_api) -> None:
    async with keys(make_api) as api:
        for query, says in (("?since=401d", "at most 400 days"), ("?by=colour", "by: one of key, release"),
                            ("?since=yesterday", "a number of days, e.g. 30d"), ("?until=2026-13-01", "until: a day"),
                            ("?since=2026-11-02&until=2026-11-01", "on or before"), ("?limit=3", "unknown parameter")):
            answer = await usage(api, ADMIN, query)
            assert answer.status_code == 422, (query, answer.text)
            assert says in answer.json()["error"]["message"], (query, answer.text)
        assert (await api.get("/usage")).status_code == 401


async def test_an_eval_session_is_billed_to_its_key_and_shown_as_of_which_evals(make_api) -> None:
    """A start marked `"eval": true` runs a real bot on the key's account: it counts in the key's
    sessions like any call (else any client could keep its use out of its bill by marking its starts),
    and `eval` says how many of them were evals."""
    async with keys(make_api) as api:
        plain = await start(api, TEAM_B)
        marked = await api.post("/start?wait=started", json={"eval": True}, headers=bearer(TEAM_B))
        assert marked.status_code == 201, marked.text
        for session_id in (plain, str(marked.json()["session_id"])):
            assert (await api.delete(f"/sessions/{session_id}", headers=bearer(TEAM_B))).status_code in (202, 204)

        async def both() -> tuple[dict[str, Any]] | None:
            answer = (await usage(api, TEAM_B)).json()
            return (answer,) if answer["totals"].get("eval", {}).get("sessions") == 1 else None

        found = await within(both, timeout=30)
        assert found is not None, (await usage(api, TEAM_B)).json()
        totals = found[0]["totals"]
        assert totals["sessions"] == 2 and totals["eval"]["sessions"] == 1
    assert totals["eval"]["minutes"] >= 0 and totals["eval"]["cost_usd"] == 0.0  # local machines: $0


def test_a_caller_without_a_key_name_is_filed_where_no_key_name_can_reach() -> None:
    """A runtime key named `phone`, or like an unnamed key's caller id, is never that caller in the rollups."""
    from dispatcher.settings import KEY_NAME
    from dispatcher.usage.usage_count import usage_key

    assert usage_key("phone", "f00dfeed12345678") == "phone"
    for caller in ("phone", "local", "f00dfeed12345678"):
        filed = usage_key(None, caller)
        assert filed == f"caller:{caller}" and not KEY_NAME.fullmatch(filed)
    assert not KEY_NAME.fullmatch(usage_key(None, None))  # a lost entry: "(unknown)"
