"""`GET /sessions/{id}/timeline`: what happened to a session, its cause when it failed, for its key alone."""

from __future__ import annotations

from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY
from tests.dispatcher.standin_bot import INTL_TEXT, PIPELINE_ERROR
from tests.support.waiting import within

OTHER_KEY = "another-key-987654321"
MINE = {"Authorization": f"Bearer {API_KEY}"}


def two_keys(make_api):
    return make_api(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}))


async def ended(api, session_id):
    async def timeline():
        answer = await api.get(f"/sessions/{session_id}/timeline", headers=MINE)
        events = answer.json().get("events", []) if answer.status_code == 200 else []
        return events if any(e["event"] == "ended" for e in events) else None

    return await within(timeline, timeout=30)


async def test_a_failed_sessions_timeline_names_the_cause_and_its_status_shows_the_error(make_api, standin_mode):
    standin_mode("pipeline-error")
    async with two_keys(make_api) as api:
        start = await api.post("/start", json={}, headers=MINE)
        assert start.status_code == 201
        session_id, trace_id = start.json()["session_id"], start.json()["trace_id"]
        events = await ended(api, session_id)
        assert events is not None
        names = [e["event"] for e in events]
        assert names[0] == "requested" and events[0]["trace_id"] == trace_id
        assert {"claimed", "launched"} & set(names)
        assert names.index("ready") < names.index("error") < names.index("ended")
        error = events[names.index("error")]
        assert (error["reason"], error["detail"]) == ("unusable", PIPELINE_ERROR)
        assert events[names.index("ended")]["exit_code"] == 1
        assert all(isinstance(e["at"], float | int) and e["replica"] for e in events)
        status = (await api.get(f"/sessions/{session_id}", headers=MINE)).json()
        assert status["error"] == PIPELINE_ERROR
        assert status["trace_id"] == trace_id


async def test_another_key_gets_404_for_a_sessions_timeline(make_api):
    async with two_keys(make_api) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        assert (await api.get(f"/sessions/{session_id}/timeline", headers=MINE)).status_code == 200
        other = await api.get(f"/sessions/{session_id}/timeline", headers={"Authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "not_found"
        unknown = await api.get("/sessions/" + "0" * 24 + "/timeline", headers=MINE)
        assert unknown.status_code == 404


async def test_a_start_that_fails_is_in_its_timeline_with_the_error_it_answered(make_api, monkeypatch):
    async with two_keys(make_api) as api:
        machines = api._transport.app.state.voicefleet.machines
        from dispatcher.machines.base import MachinesError

        async def refused(spec):
            raise MachinesError("local_rejected", "could not start the bot process: no such file")

        monkeypatch.setattr(machines, "launch", refused)
        state = api._transport.app.state.voicefleet
        monkeypatch.setattr(state.sessions, "_launch_machine", refused)
        answer = await api.post("/start", json={}, headers=MINE)
        assert answer.status_code >= 500
        session_id = answer.json()["error"]["session_id"]
        await state.sessions.timeline.settled()
        events = (await api.get(f"/sessions/{session_id}/timeline", headers=MINE)).json()["events"]
        assert [e["event"] for e in events] == ["requested", "failed"]
        # What the caller was told, no more (the provider's own words stay in the dispatcher's log).
        assert (events[1]["code"], events[1]["message"]) == ("local_rejected", answer.json()["error"]["message"])


async def test_a_bots_international_text_is_kept_as_sent_and_only_what_steers_a_terminal_is_escaped(
        make_api, standin_mode):
    standin_mode("intl")
    async with two_keys(make_api) as api:
        session_id = (await api.post("/start", json={}, headers=MINE)).json()["session_id"]
        events = await ended(api, session_id)
        assert events is not None
        [error] = [e for e in events if e["event"] == "error"]
        expected = f"its speech service refused{INTL_TEXT}\\x1b[2J\\x9b31m\\u202eevil"
        assert error["detail"] == expected  # ZWJ, narrow NBSP, ZWNJ, NBSP as sent; ESC, CSI, RLO escaped
        assert (await api.get(f"/sessions/{session_id}", headers=MINE)).json()["error"] == expected
