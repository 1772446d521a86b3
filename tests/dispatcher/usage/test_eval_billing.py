"""An eval's session is billed to its key like any session: any client key may mark its starts
`"eval": true`, so the mark never takes a call out of the key's sessions, minutes and cost in
`GET /usage`, the daily billing file or the per-key metrics; the evals are kept as a breakdown
("of which evals") beside them. A dispatcher with real stand-in bots, its ends recorded as they come."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx

from dispatcher.usage.day_file import day_csv
from tests.dispatcher.api.test_session_list import ADMIN, TEAM_A, TEAM_B, bearer, keys
from tests.dispatcher.usage.test_usage_api import start, usage
from tests.support.waiting import within


async def eval_start(api: httpx.AsyncClient, key: str) -> str:
    marked = await api.post("/start?wait=started", json={"eval": True, "body": {"real": "customer call"}},
                            headers=bearer(key))
    assert marked.status_code == 201, marked.text
    return str(marked.json()["session_id"])


async def stop(api: httpx.AsyncClient, key: str, session_ids: list[str]) -> None:
    """Ends the sessions after a call's moment: a warm bot's session is counted from its claim, and
    one ended at once could round to 0.00 minutes."""
    await asyncio.sleep(1.5)
    for session_id in session_ids:
        assert (await api.delete(f"/sessions/{session_id}", headers=bearer(key))).status_code in (202, 204)


async def evals_counted(api: httpx.AsyncClient, count: int) -> dict[str, Any]:
    async def read() -> tuple[dict[str, Any]] | None:
        answer = (await usage(api, ADMIN, "?by=key")).json()
        return (answer,) if answer["totals"].get("eval", {}).get("sessions") == count else None

    found = await within(read, timeout=30)
    assert found is not None, (await usage(api, ADMIN, "?by=key")).json()
    return found[0]


async def test_a_client_keys_eval_marked_calls_are_billed_to_it_and_listed_in_the_daily_billing_file(
        make_api) -> None:
    """team-b's only calls are two evals, team-a's one call is not: both are billed and counted once, and the
    daily billing file lists team-b (a key whose only calls are evals) beside team-a."""
    async with keys(make_api) as api:
        called = await start(api, TEAM_A)
        await stop(api, TEAM_B, [await eval_start(api, TEAM_B), await eval_start(api, TEAM_B)])
        await stop(api, TEAM_A, [called])
        answer = await evals_counted(api, 2)
        [row] = [row for row in answer["rows"] if row["key"] == "team-b"]
        assert row["sessions"] == 2 and row["minutes"] > 0, row  # billed as any call
        assert row["eval"]["sessions"] == 2 and row["eval"]["minutes"] == row["minutes"]  # of which evals
        assert row["cost_usd"] == row["eval"]["cost_usd"] == 0.0  # local machines: $0, yet counted
        assert answer["totals"]["eval"]["sessions"] == 2, answer["totals"]  # the totals count the evals too
        own = (await usage(api, TEAM_B)).json()  # the key reads the same of itself
        assert own["totals"]["sessions"] == 2 and own["totals"]["eval"]["sessions"] == 2
        assert own["totals"]["minutes"] == row["minutes"], own["totals"]

        async def metered_and_listed() -> tuple[str, list[dict[str, Any]]] | None:
            # The per-key metrics and the listing's cost are noted just after the sums: read until both are.
            metrics = (await api.get("/metrics", headers=bearer(ADMIN))).text
            listed = (await api.get("/sessions", headers=bearer(TEAM_B))).json()["sessions"]
            billed = 'voicefleet_key_sessions_total{key="team-b"} 2.0' in metrics
            return (metrics, listed) if billed and all("cost_usd" in item for item in listed) else None

        seen = await within(metered_and_listed, timeout=30)
        assert seen is not None, "the evals are never in the key's metrics and listed costs"
        assert [item["cost_usd"] for item in seen[1]] == [0.0, 0.0]  # each one's cost, listed

        transport = api._transport
        assert isinstance(transport, httpx.ASGITransport)
        rollups = transport.app.state.voicefleet.usage.rollups  # type: ignore[attr-defined]

        async def all_counted() -> tuple[list[dict[str, str]]] | None:
            today = datetime.now(UTC).date()
            written = day_csv(await rollups.grouped(today, today, "key", None)).decode()
            lines = list(csv.DictReader(io.StringIO(written)))
            return (lines,) if lines[-1]["sessions"] == "3" else None

        found = await within(all_counted, timeout=30)
        assert found is not None
        lines = {line["key"]: line for line in found[0]}
        assert set(lines) == {"team-a", "team-b", "TOTAL"}, found[0]
        assert lines["team-b"]["sessions"] == "2" and float(lines["team-b"]["minutes"]) > 0, lines
        assert lines["team-b"]["cost_usd"] == "0.000000" and lines["team-b"]["not_priced"] == "0"
        assert lines["team-a"]["sessions"] == "1" and lines["TOTAL"]["sessions"] == "3"
