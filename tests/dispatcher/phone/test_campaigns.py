"""Campaigns (`POST /campaigns`, docs/phone.md#campaigns) through Twilio's Calls API: the dispatcher in-process
with its campaign worker running, Twilio the strict fake on a real port (tests/fakes/twilio_outbound.py) whose
signed callbacks reach the app through its ASGI transport; the test plays each far end. Strict validation,
the do-not-call list, a retry after its delay, stop and resume, and the results as JSON and CSV."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import dataclasses
import inspect
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.api import call_order
from dispatcher.api.auth import caller_of, named_caller_id
from dispatcher.api.call_schemas import CallRequest
from dispatcher.app import create_app
from dispatcher.campaigns import create, worker
from dispatcher.campaigns.create import add_rows
from dispatcher.campaigns.schemas import CampaignRow
from dispatcher.campaigns.settings import CampaignSettings
from dispatcher.campaigns.views import _safe
from dispatcher.campaigns.worker import CampaignWorker
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.campaign_book import Limits
from dispatcher.store.client import StoreUnavailable
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall
from tests.support.hook_receiver import hook_receiver
from tests.support.ports import free_port

PUBLIC = "https://calls.example.com"
FROM = "+14155550199"
NUMBERS = ["+14155550101", "+14155550102", "+14155550103"]
DO_NOT_CALL = "+14155550666"
WAIT = 30.0  # bounds every wait below: generous, for a loaded machine


@contextlib.asynccontextmanager
async def running(twilio: FakeTwilioCalls, *, working: bool = True, settings: Settings | None = None,
                  **more: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app (keyless unless `settings` name keys), its campaign worker running, and a client of it."""
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
           "PHONE_PUBLIC_URL": PUBLIC, "TWILIO_CALLS_PER_SECOND": "20", "CALLS_DO_NOT_CALL": DO_NOT_CALL,
           **calls_allowed("twilio", (FROM,)), **more}
    app = create_app(settings or Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    worker = asyncio.create_task(CampaignWorker(state, state.campaigns, lease_seconds=10.0, poll_seconds=0.05,
                                                watch_seconds=0.05).run() if working else asyncio.sleep(0))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            client.state = state  # type: ignore[attr-defined]
            yield client
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await state.aclose()


@pytest.fixture
async def api(twilio: FakeTwilioCalls) -> AsyncIterator[httpx.AsyncClient]:
    async with running(twilio) as client:
        yield client


def campaign(numbers: list[str] = NUMBERS, **change: Any) -> dict[str, Any]:
    return {"rows": [{"to": n, "body": {"row": i}} for i, n in enumerate(numbers)], "from": FROM,
            "carrier": "twilio", **change}


async def until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {WAIT} s: {what}")


async def shown(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    answer = await api.get(f"/campaigns/{campaign_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def created(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await api.post("/campaigns", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def placed_to(twilio: FakeTwilioCalls, number: str) -> list[PlacedCall]:
    return [call for call in twilio.placed if call.one("To") == number]


@pytest.mark.parametrize(("change", "status", "code", "named"), [
    ({"rows": [{"to": "0044"}]}, 422, "invalid_request", "rows.0.to"),
    ({"rows": []}, 422, "invalid_request", "rows"),
    ({"pace": 21}, 422, "pace_above_carrier", "TWILIO_CALLS_PER_SECOND"),
    ({"concurrency": 0}, 422, "invalid_request", "concurrency"),
    ({"retry": {"on": ["busy"], "after_seconds": 10, "attempts": 0}}, 422, "invalid_request", "retry.attempts"),
    ({"retry": {"on": ["answered"], "after_seconds": 10, "attempts": 2}}, 422, "invalid_request", "retry.on"),
    ({"retry": {"on": ["busy"], "after_seconds": 7 * 86_400, "attempts": 10}}, 422, "invalid_request", "29 days"),
    ({"trunk": "far"}, 422, "trunk_not_used", "trunk"),
    ({"from": "+14155550111"}, 403, "call_not_allowed", "TWILIO_CALLER_IDS"),
    ({"rows": [{"to": NUMBERS[0], "body": {"x": "y" * 5000}}]}, 413, "body_too_large", "rows[0].body"),
    ({"colour": "blue"}, 422, "invalid_request", "colour"),
])
async def test_a_campaign_is_checked_before_anything_is_kept(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls, change: dict[str, Any], status: int, code: str,
        named: str) -> None:
    answer = await api.post("/campaigns", json=campaign(**change))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code and named in answer.json()["error"]["message"], answer.text
    assert (await api.get("/campaigns")).json()["campaigns"] == []
    assert twilio.placed == []


async def test_rows_past_the_bound_are_refused_naming_it(api: httpx.AsyncClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dispatcher.campaigns.create.MAX_ROWS", 3)
    cid = await created(api, campaign(start=False))
    more = await api.post(f"/campaigns/{cid}/rows", json={"rows": [{"to": NUMBERS[0]}]})
    assert more.status_code == 422 and more.json()["error"]["code"] == "too_many_rows", more.text
    assert (await shown(api, cid))["rows"] == 3


async def test_a_number_on_the_do_not_call_list_is_skipped_counted_and_never_placed(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    cid = await created(api, campaign([NUMBERS[0], DO_NOT_CALL]))
    call = (await until("the first row's call", lambda: placed_to(twilio, NUMBERS[0])))[0]
    await twilio.finish(call.sid, "no-answer")
    done = await until("the campaign's end", lambda: _finished(api, cid))
    assert done["skipped"] == 1 and done["outcomes"] == {"no_answer": 1} and done["placed"] == 1, done
    assert placed_to(twilio, DO_NOT_CALL) == []
    results = (await api.get(f"/campaigns/{cid}/results")).json()["results"]
    assert [(r["to"], r["outcome"], r["attempts"]) for r in results] == [
        (NUMBERS[0], "no_answer", 1), (DO_NOT_CALL, "skipped", 0)]


async def test_a_busy_row_is_called_again_after_its_delay_with_its_data_and_the_results_say_so(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    retry = {"on": ["busy", "no_answer"], "after_seconds": 1.0, "attempts": 2}
    cid = await created(api, campaign([NUMBERS[0]], retry=retry))
    first = (await until("the first call", lambda: placed_to(twilio, NUMBERS[0])))[0]
    busy_at = time.monotonic()  # before the busy: the retry's delay runs from its end, a moment later
    await twilio.finish(first.sid, "busy")
    assert (await until("the row waiting for its retry", lambda: _retrying(api, cid)))["retries"] == 1
    calls = await until("the second call", lambda: placed_to(twilio, NUMBERS[0])[1:] and placed_to(twilio, NUMBERS[0]))
    assert twilio.created_at[1] - busy_at >= 1.0 - 0.01  # not before its delay (the fake's clock: monotonic)
    assert len(calls) == 2 and calls[0].one("StatusCallback") != calls[1].one("StatusCallback")  # its own session
    await twilio.finish(calls[1].sid, "busy")
    done = await until("the campaign's end", lambda: _finished(api, cid))
    assert done["outcomes"] == {"busy": 1} and done["placed"] == 2 and done["retries"] == 1, done
    assert len(placed_to(twilio, NUMBERS[0])) == 2  # attempts: 2, no third
    table = (await api.get(f"/campaigns/{cid}/results", params={"format": "csv"}))
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [(r["to"], r["outcome"], r["attempts"], r["status"]) for r in rows] == [(NUMBERS[0], "busy", "2", "done")]
    assert f"/calls/{rows[0]['session_id']}/" in (calls[1].one("StatusCallback") or "")  # the last call's session


async def test_a_stopped_campaign_places_no_new_call_and_resumes_where_it_stopped(
        api: httpx.AsyncClient, twilio: FakeTwilioCalls) -> None:
    cid = await created(api, campaign(concurrency=1))
    first = (await until("the first call", lambda: placed_to(twilio, NUMBERS[0])))[0]
    stopped = await api.post(f"/campaigns/{cid}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
    await twilio.finish(first.sid, "failed")  # the call under way goes on to its end
    await until("the first row settled", lambda: _done(api, cid, 1))
    await asyncio.sleep(0.5)  # ten of the worker's looks: a stopped campaign claims no row
    assert len(twilio.placed) == 1
    assert (await shown(api, cid))["pending"] == 2
    assert (await api.post(f"/campaigns/{cid}/resume")).json()["status"] == "running"
    for number in NUMBERS[1:]:
        call = (await until(f"the call to {number}", lambda n=number: placed_to(twilio, n)))[0]
        await twilio.finish(call.sid, "no-answer")
    done = await until("the campaign's end", lambda: _finished(api, cid))
    assert done["outcomes"] == {"failed": 1, "no_answer": 2} and done["in_progress"] == 0, done
    assert [c.one("To") for c in twilio.placed] == NUMBERS  # each once, in the file's order


async def test_a_row_waiting_for_the_carrier_s_turn_when_its_campaign_stops_places_nothing_until_resumed(
        twilio: FakeTwilioCalls) -> None:
    """Two campaigns share one Twilio account's pace (a turn every 5 s): the second's row is claimed and waits
    inside `order_call` for the account's next turn; the campaign is stopped meanwhile. When the turn comes the
    row places nothing and waits, never called, for the resume, which places it."""
    async with running(twilio, TWILIO_CALLS_PER_SECOND="0.2", TWILIO_CALL_MAX_WAIT_SECONDS="60") as api:
        state = api.state  # type: ignore[attr-defined]
        await created(api, campaign([NUMBERS[0]], pace=0.2))
        await until("the first campaign's call, the account's turn", lambda: placed_to(twilio, NUMBERS[0]))
        cid = await created(api, campaign([NUMBERS[1]], pace=0.2))

        async def row() -> dict[str, Any]:
            return dict((await state.campaigns.rows(cid, 0, 1))[0][1])

        async def calling() -> bool:
            return (await row()).get("status") == "calling"

        await until("its row claimed, waiting for the account's next turn", calling)
        stopped = await api.post(f"/campaigns/{cid}/stop")
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text

        async def back() -> bool:
            return (await row()).get("status") == "pending"

        await until("the row back, its turn come and gone", back)
        assert placed_to(twilio, NUMBERS[1]) == []
        assert (await row()).get("attempts") == 0
        progress = await shown(api, cid)
        assert (progress["pending"], progress["in_progress"], progress["placed"]) == (1, 0, 0), progress
        assert (await api.post(f"/campaigns/{cid}/resume")).json()["status"] == "running"
        await until("the call placed once resumed", lambda: placed_to(twilio, NUMBERS[1]))
    assert len(placed_to(twilio, NUMBERS[1])) == 1


async def test_a_campaign_through_telnyx_places_each_row_through_telnyx() -> None:
    with serve(FakeTelnyxCalls(create_per_second=50)) as telnyx:
        async with running(telnyx, **telnyx.env(), TELNYX_CALLS_PER_SECOND="20",
                           **calls_allowed("telnyx", (FROM,))) as api:
            cid = await created(api, campaign(NUMBERS[:2], carrier="telnyx", concurrency=2))
            calls = await until("both calls", lambda: len(telnyx.placed) == 2 and telnyx.placed)
            for call in calls:
                await telnyx.finish(call.sid, "no-answer")
            done = await until("the campaign's end", lambda: _finished(api, cid))
    assert done["carrier"] == "telnyx" and done["outcomes"] == {"no_answer": 2}, done
    assert sorted(c.one("To") for c in calls) == NUMBERS[:2]


async def test_another_key_s_campaign_is_not_found(api: httpx.AsyncClient) -> None:
    assert (await api.get("/campaigns/cmp_0123456789abcdef")).status_code == 404
    assert (await api.post("/campaigns/nope/stop")).status_code == 404


async def test_a_row_whose_worker_died_mid_call_is_followed_by_another_after_its_lease_never_placed_again(
        twilio: FakeTwilioCalls) -> None:
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        first = CampaignWorker(state, state.campaigns, lease_seconds=1.0, poll_seconds=0.05, watch_seconds=0.05)
        working = asyncio.create_task(first.run())
        cid = await created(api, campaign([NUMBERS[0]]))
        call = (await until("the call", lambda: placed_to(twilio, NUMBERS[0])))[0]
        working.cancel()  # its replica gone, mid-call: the row's lease is left to run out
        await asyncio.gather(working, return_exceptions=True)
        assert (await shown(api, cid))["in_progress"] == 1
        second = CampaignWorker(state, state.campaigns, lease_seconds=1.0, poll_seconds=0.05, watch_seconds=0.05)
        taking = asyncio.create_task(second.run())
        try:
            await twilio.finish(call.sid, "busy")
            done = await until("the campaign's end", lambda: _finished(api, cid))
        finally:
            taking.cancel()
            await asyncio.gather(taking, return_exceptions=True)
    assert done["outcomes"] == {"busy": 1} and done["placed"] == 1, done
    assert len(twilio.placed) == 1  # followed by the second worker, never placed again


async def test_a_store_that_does_not_answer_is_503_with_retry_after_never_a_500(twilio: FakeTwilioCalls) -> None:
    nowhere = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}", "REDIS_TIMEOUT_SECONDS": "1",
               "REDIS_MESSAGE_SECRET": "m" * 40, "REDIS_PASSWORD": "p" * 24}  # a port nothing listens on
    async with running(twilio, working=False, **nowhere) as api:
        for answer in (await api.post("/campaigns", json=campaign()), await api.get("/campaigns"),
                       await api.get("/campaigns/cmp_0123456789abcdef")):
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable", answer.text
            assert answer.headers["retry-after"] == "5"


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


async def test_campaign_finished_is_pushed_once_signed_by_whoever_ends_it(twilio: FakeTwilioCalls) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async with hook_receiver(hook) as url, running(twilio, WEBHOOK_URL=url, WEBHOOK_SECRET=SECRET) as api:
        skipped = await created(api, campaign([DO_NOT_CALL]))  # nothing to call: finished as it is made
        called = await created(api, campaign([NUMBERS[0]]))
        call = (await until("the call", lambda: placed_to(twilio, NUMBERS[0])))[0]
        await twilio.finish(call.sid, "busy")
        await until("both webhooks", lambda: len(_of(received, "campaign.finished")) >= 2)
        await asyncio.sleep(0.3)  # a second push of either would come by now
    finished = _of(received, "campaign.finished")
    by_campaign = {event["data"]["campaign_id"]: event for event in finished}
    assert len(finished) == 2 and set(by_campaign) == {skipped, called}, finished
    owner = api.state.auth.identify(None).id  # type: ignore[attr-defined]
    assert {event["data"]["key_id"] for event in finished} == {owner}, finished
    assert by_campaign[skipped]["data"]["skipped"] == 1 and by_campaign[skipped]["data"]["outcomes"] == {}
    assert by_campaign[called]["data"]["outcomes"] == {"busy": 1} and by_campaign[called]["data"]["rows"] == 1


def _of(received: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in received if event["type"] == kind]


async def _finished(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any] | None:
    found = await shown(api, campaign_id)
    return found if found["status"] == "finished" else None


async def _retrying(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any] | None:
    found = await shown(api, campaign_id)
    return found if found["retrying"] == 1 else None


async def _done(api: httpx.AsyncClient, campaign_id: str, count: int) -> bool:
    return int((await shown(api, campaign_id))["done"]) >= count


async def test_a_replica_paused_past_its_lease_places_no_call_for_a_row_another_settled(
        twilio: FakeTwilioCalls, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replica A notes its row `calling`, then stalls (GC, SIGSTOP) before its create, past its lease. Replica
    B claims the row, asks for the same call (same Idempotency-Key); Twilio refuses it (`not_placed`) and B
    settles the campaign finished. A resumes inside `order_call`, whose Idempotency-Key lets a call whose tries
    all ended unhanded be placed again: the lease renewed under A's claim just before the create is refused,
    and A places nothing."""
    stalled, resumed = asyncio.Event(), asyncio.Event()
    real, asked = worker.order_call, []  # type: ignore[attr-defined]

    async def order(*args: object, **kwargs: object) -> object:
        asked.append(args)
        if len(asked) == 1:  # replica A: stopped between noting the row `calling` and its create
            stalled.set()
            await resumed.wait()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "order_call", order)
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        a = CampaignWorker(state, state.campaigns, lease_seconds=1.0, poll_seconds=3600, watch_seconds=0.05)
        a._renew = lambda *_: asyncio.sleep(3600)  # type: ignore[method-assign]  # stopped: it renews nothing
        a_running = asyncio.create_task(a.run())
        cid = await created(api, campaign([NUMBERS[0]]))
        await until("A holding the row, stalled", stalled.is_set)
        twilio.numbers.discard(FROM)  # B's create refused by Twilio: not placed
        b = CampaignWorker(state, state.campaigns, lease_seconds=1.0, poll_seconds=0.05, watch_seconds=0.05)
        b_running = asyncio.create_task(b.run())
        done = await until("B settling the row", lambda: _finished(api, cid))
        twilio.numbers.add(FROM)
        resumed.set()  # A goes on where it stopped
        await asyncio.sleep(1.0)
        for task in (a_running, b_running):
            task.cancel()
        await asyncio.gather(a_running, b_running, return_exceptions=True)
    assert done["outcomes"] == {"not_placed": 1}, done
    assert placed_to(twilio, NUMBERS[0]) == []  # the stale holder must place nothing


async def test_another_key_s_newer_campaigns_do_not_hide_this_key_s(twilio: FakeTwilioCalls) -> None:
    """`GET /campaigns` reads this key's own index: another key's 1000 newer campaigns hide none of its."""
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        mine = await created(api, campaign([NUMBERS[0]], start=False))
        for n in range(1000):  # another key's, newer: as `POST /campaigns` would open them
            await state.campaigns.open(f"cmp_{n:016x}", {"spec": "{}", "created": time.time() + 1 + n,
                                                         "concurrency": 1, "owner": "another-key"},
                                        Limits(live=2000))
        listed = (await api.get("/campaigns")).json()["campaigns"]
    assert mine in [c["id"] for c in listed]


async def test_two_requests_adding_rows_at_once_stay_within_max_rows(twilio: FakeTwilioCalls,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests adding rows at once each read the same total before appending: the store checks MAX_ROWS again
    as it writes, against the total then. Shown with MAX_ROWS 3 and the stale total both requests read."""
    monkeypatch.setattr(create, "MAX_ROWS", 3)
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        cid = await created(api, campaign([NUMBERS[0]], start=False))
        record = await state.campaigns.read(cid)
        assert record is not None
        who, spec = state.auth.identify(None), json.loads(record.meta["spec"])
        rows = [CampaignRow(to=n) for n in NUMBERS[1:3]]
        read_by_both = int(record.meta["total"])  # 1: both requests read it before either appended
        await add_rows(state, who, cid, spec, read_by_both, rows)
        with pytest.raises(ApiError) as refused:
            await add_rows(state, who, cid, spec, read_by_both, rows)
        assert (refused.value.status, refused.value.code) == (422, "too_many_rows")
        record = await state.campaigns.read(cid)
        assert record is not None and record.meta["total"] == "3"


async def test_a_key_past_its_campaigns_not_finished_is_refused_naming_the_setting(twilio: FakeTwilioCalls) -> None:
    async with running(twilio, working=False, CAMPAIGN_MAX_LIVE_PER_KEY="1") as api:
        await created(api, campaign([NUMBERS[0]], start=False))
        refused = await api.post("/campaigns", json=campaign([NUMBERS[1]], start=False))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_campaigns"
        assert "CAMPAIGN_MAX_LIVE_PER_KEY" in refused.json()["error"]["message"]


@pytest.mark.parametrize("cell", ["\t=HYPERLINK(\"https://evil.example\",\"x\")", "\r=1+1"])
def test_a_formula_behind_a_tab_or_carriage_return_is_written_as_text(cell: str) -> None:
    """OWASP's CSV-injection list includes a leading tab (0x09) and carriage return (0x0D) besides = + - @
    (https://owasp.org/www-community/attacks/CSV_Injection)."""
    assert str(_safe(cell)).startswith("'")


async def test_a_number_put_on_the_do_not_call_list_after_its_row_was_added_is_never_called(
        twilio: FakeTwilioCalls) -> None:
    """The list is checked again before each call: a number added to CALLS_DO_NOT_CALL(_FILE) and the replicas
    restarted is never called by a campaign that held it, its row skipped then."""
    async with running(twilio) as api:
        state = api.state  # type: ignore[attr-defined]
        cid = await created(api, campaign([NUMBERS[0]], start=False))
        # The number asked not to be called; the replicas restart with the list that holds it.
        object.__setattr__(state, "campaign_settings", CampaignSettings(do_not_call=frozenset({NUMBERS[0]})))
        assert (await api.post(f"/campaigns/{cid}/resume")).status_code == 200
        done = await until("the row skipped", lambda: _finished(api, cid))
    assert placed_to(twilio, NUMBERS[0]) == []
    assert done["skipped"] == 1 and done["placed"] == 0, done


async def test_a_campaign_asked_for_again_with_its_idempotency_key_calls_no_number_twice(
        twilio: FakeTwilioCalls) -> None:
    """As `POST /calls`, a retried request (same Idempotency-Key, a client's retry after a timeout) is answered
    with what the first made: no second campaign, no rows appended twice."""
    async with running(twilio, working=False) as api:
        once = {"Idempotency-Key": "renewals-2026-11-29"}
        first = await api.post("/campaigns", json=campaign([NUMBERS[0]], start=False), headers=once)
        again = await api.post("/campaigns", json=campaign([NUMBERS[0]], start=False), headers=once)
        assert first.status_code == 201, first.text
        cid = first.json()["id"]
        more = {"Idempotency-Key": "renewals-2026-11-29-batch-2"}
        for _ in range(2):
            await api.post(f"/campaigns/{cid}/rows", json={"rows": [{"to": NUMBERS[1]}]}, headers=more)
        listed = (await api.get("/campaigns")).json()["campaigns"]
    assert again.status_code == 200 and again.json()["id"] == cid, again.text
    assert len(listed) == 1 and listed[0]["rows"] == 2, listed


async def test_a_malformed_idempotency_key_is_refused_and_makes_no_campaign(twilio: FakeTwilioCalls) -> None:
    async with running(twilio, working=False) as api:
        bad = {"Idempotency-Key": "k" * 256}  # over its 255 characters
        refused = await api.post("/campaigns", json=campaign([NUMBERS[0]], start=False), headers=bad)
        made = await api.post("/campaigns", json=campaign([NUMBERS[0]], start=False))
        cid = made.json()["id"]
        rows = await api.post(f"/campaigns/{cid}/rows", json={"rows": [{"to": NUMBERS[1]}]}, headers=bad)
        listed = (await api.get("/campaigns")).json()["campaigns"]
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_idempotency_key"), refused.text
    assert (rows.status_code, rows.json()["error"]["code"]) == (400, "invalid_idempotency_key"), rows.text
    assert len(listed) == 1 and listed[0]["rows"] == 1, listed


async def test_a_key_over_its_budget_places_no_call(twilio: FakeTwilioCalls) -> None:
    """The key's budget is checked in `order_call` (`POST /calls`' path and each campaign row's) before the
    carrier's create: a session refused at its start would come after the callee's phone rang. 429
    `over_budget`, which a campaign's row takes as "later": it waits, its attempt not spent."""
    async with running(twilio) as api:
        state = api.state  # type: ignore[attr-defined]
        state.sessions.budgets.limit({"budget.local.sessions": 0})  # the keyless dispatcher's key, `local`
        who = dataclasses.replace(state.auth.identify(None), name="local")
        call = CallRequest.model_validate({"to": NUMBERS[0], "from": FROM})
        with pytest.raises(ApiError) as refused:
            await call_order.order_call(state, who, call, None)
        assert (refused.value.status, refused.value.code) == (429, "over_budget")
        assert twilio.placed == []


async def test_an_admin_key_s_campaign_places_its_calls_as_its_creator_listed_for_it_alone(
        twilio: FakeTwilioCalls) -> None:
    """The dashboard's campaigns are its admin key's: the worker finds that key among the deployment's, as a
    client key's, and places the rows (none ended `not_placed` as a key no longer configured)."""
    admin, client = "vf-admin-campaign-0a1b2c3d4e5f", "vf-client-campaign-6a7b8c9d0e1f"
    admin_id = caller_of(b"admin:" + hash_api_key(admin)).id  # an admin key has no name: its id is named
    keys = Settings.from_env({"DISPATCHER_API_KEYS": f"client:{client}", "DISPATCHER_ADMIN_KEYS": admin})
    async with running(twilio, settings=keys, TWILIO_CALLERS=f"client,{admin_id}") as api:
        api.headers["Authorization"] = f"Bearer {admin}"
        campaign_id = await created(api, campaign(NUMBERS[:1]))
        await until("the admin's row placed", lambda: placed_to(twilio, NUMBERS[0]))
        await twilio.finish(placed_to(twilio, NUMBERS[0])[0].sid, "no-answer")
        done = await until("finished", lambda: _finished(api, campaign_id))
        assert done["outcomes"] == {"no_answer": 1}, done
        theirs = (await api.get("/campaigns", headers={"Authorization": f"Bearer {client}"})).json()["campaigns"]
        assert theirs == [] and [c["id"] for c in (await api.get("/campaigns")).json()["campaigns"]] == [campaign_id]


async def _finished(api: httpx.AsyncClient, campaign_id: str) -> dict[str, Any] | None:
    progress = await shown(api, campaign_id)
    return progress if progress["status"] == "finished" else None


async def test_results_as_csv_from_a_store_gone_mid_way_are_a_503_never_a_cut_file(twilio: FakeTwilioCalls) -> None:
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        cid = await created(api, campaign([NUMBERS[0]], start=False))

        async def gone(*_: object) -> None:
            raise StoreUnavailable("the store did not answer")

        state.campaigns.rows = gone  # the campaign read, then its rows' page not
        answer = await api.get(f"/campaigns/{cid}/results", params={"format": "csv"})
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable", answer.text


async def test_a_number_is_called_once_a_campaign_a_repeat_refused_naming_both_rows(api: httpx.AsyncClient) -> None:
    twice = await api.post("/campaigns", json=campaign([NUMBERS[0], NUMBERS[1], NUMBERS[0]], start=False))
    assert twice.status_code == 422 and twice.json()["error"]["code"] == "duplicate_number", twice.text
    assert "rows[2]" in twice.json()["error"]["message"] and "rows[0]" in twice.json()["error"]["message"]
    cid = await created(api, campaign([NUMBERS[0]], start=False))
    again = await api.post(f"/campaigns/{cid}/rows", json={"rows": [{"to": NUMBERS[1]}, {"to": NUMBERS[0]}]})
    assert again.status_code == 422 and again.json()["error"]["code"] == "duplicate_number", again.text
    assert (await shown(api, cid))["rows"] == 1  # none of the request's rows added


async def test_a_replica_s_look_reads_no_idle_campaign(twilio: FakeTwilioCalls) -> None:
    """Stopped campaigns (as a key's many `"start": false` ones) cost a replica's look no store read: it
    feeds only those with something due."""
    async with running(twilio, working=False) as api:
        state = api.state  # type: ignore[attr-defined]
        for _ in range(50):
            await created(api, campaign([NUMBERS[0]], start=False))
        reads: list[str] = []
        read = state.campaigns.read

        async def counted(campaign_id: str) -> Any:
            reads.append(campaign_id)
            return await read(campaign_id)

        state.campaigns.read = counted
        looking = CampaignWorker(state, state.campaigns, lease_seconds=10.0)
        try:
            await looking.look()
            await asyncio.sleep(0.2)  # any feeder it started would have read its campaign by now
        finally:
            await looking.aclose()
    assert reads == []


ADMIN, CLIENT = "vf-admin-campaigns-1f2e3d4c5b6a", "vf-client-campaigns-0a9b8c7d6e5f"
OTHER = "vf-other-campaign-77aa55bb"


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def _keyed(twilio: FakeTwilioCalls, *, working: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Two client keys and an admin key; only the client keys may call out (an admin's call would be refused)."""
    keys = Settings.from_env({"DISPATCHER_API_KEYS": f"client:{CLIENT},other:{OTHER}", "DISPATCHER_ADMIN_KEYS": ADMIN})
    async with running(twilio, working=working, settings=keys, TWILIO_CALLERS="client,other") as api:
        yield api


async def test_a_key_lists_its_own_campaigns_and_an_admin_every_key_s_with_its_owner_a_page_at_a_time(
        twilio: FakeTwilioCalls) -> None:
    async with _keyed(twilio, working=False) as api:
        theirs = (await api.post("/campaigns", headers=_as(CLIENT), json=campaign([NUMBERS[0]], start=False))).json()
        other = (await api.post("/campaigns", headers=_as(OTHER), json=campaign([NUMBERS[1]], start=False))).json()
        own = (await api.get("/campaigns", headers=_as(CLIENT))).json()
        assert [c["id"] for c in own["campaigns"]] == [theirs["id"]] and "key" not in own["campaigns"][0], own
        every = (await api.get("/campaigns", headers=_as(ADMIN))).json()
        assert [(c["id"], c["key"], c["caller"]) for c in every["campaigns"]] == [
            (other["id"], "other", named_caller_id("other")), (theirs["id"], "client", named_caller_id("client"))]
        first = (await api.get("/campaigns", headers=_as(ADMIN), params={"limit": 1})).json()
        assert [c["id"] for c in first["campaigns"]] == [other["id"]] and first["next_offset"] == 1, first
        second = (await api.get("/campaigns", headers=_as(ADMIN), params={"limit": 1, "offset": 1})).json()
        assert [c["id"] for c in second["campaigns"]] == [theirs["id"]], second
        one_key = (await api.get("/campaigns", headers=_as(ADMIN), params={"key": "client"})).json()
        assert [c["id"] for c in one_key["campaigns"]] == [theirs["id"]] and one_key["next_offset"] is None
        for params, status in (({"limit": 101}, 422), ({"limit": 0}, 422), ({"offset": -1}, 422),
                               ({"key": "bad name!"}, 422)):
            answer = await api.get("/campaigns", headers=_as(ADMIN), params=params)
            assert answer.status_code == status, (params, answer.text)
        refused = await api.get("/campaigns", headers=_as(CLIENT), params={"key": "other"})
        assert refused.status_code == 403 and "admin key" in refused.text, refused.text


async def test_an_admin_stops_and_resumes_a_client_key_s_campaign_its_calls_still_the_client_s_on_the_record(
        twilio: FakeTwilioCalls) -> None:
    async with _keyed(twilio) as api:
        made = await api.post("/campaigns", headers=_as(CLIENT), json=campaign(NUMBERS[:2], concurrency=1))
        cid = made.json()["id"]
        first = (await until("the first call", lambda: placed_to(twilio, NUMBERS[0])))[0]
        for method, path in (("GET", ""), ("POST", "/stop"), ("POST", "/resume"), ("GET", "/results")):
            answer = await api.request(method, f"/campaigns/{cid}{path}", headers=_as(OTHER))
            assert answer.status_code == 404, (path, answer.text)  # another client key: as if none
        stopped = await api.post(f"/campaigns/{cid}/stop", headers=_as(ADMIN))
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.text
        assert (await api.get(f"/campaigns/{cid}", headers=_as(CLIENT))).json()["status"] == "stopped"
        await twilio.finish(first.sid, "no-answer")
        results = await api.get(f"/campaigns/{cid}/results", headers=_as(ADMIN))
        assert results.status_code == 200 and results.json()["rows"] == 2, results.text
        resumed = await api.post(f"/campaigns/{cid}/resume", headers=_as(ADMIN))
        assert resumed.status_code == 200 and resumed.json()["status"] == "running", resumed.text
        # Placed as the client key (TWILIO_CALLERS names it, not the admin's): never refused as the admin's.
        second = (await until("the second call", lambda: placed_to(twilio, NUMBERS[1])))[0]
        await twilio.finish(second.sid, "no-answer")
        done = await until("the campaign's end", lambda: _finished_as(api, cid, CLIENT))
        assert done["outcomes"] == {"no_answer": 2}, done
        audit = (await api.get("/audit/sessions", headers=_as(ADMIN))).json()["lines"]
        assert [(line["action"], line["campaign_id"], line["key_id"]) for line in audit] == [
            ("campaign.resume", cid, named_caller_id("client")), ("campaign.results", cid, named_caller_id("client")),
            ("campaign.stop", cid, named_caller_id("client"))], audit


async def _finished_as(api: httpx.AsyncClient, campaign_id: str, key: str) -> dict[str, Any] | None:
    progress = (await api.get(f"/campaigns/{campaign_id}", headers=_as(key))).json()
    return dict(progress) if progress["status"] == "finished" else None
