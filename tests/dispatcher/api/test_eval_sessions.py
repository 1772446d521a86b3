"""An eval's session (`POST /start` with `eval: true`) through the app with local bots (the stand-in):
pinned to a release (the start's, else the stable one, never drawn by weight), and marked as an eval
in its answer, its `GET`, its timeline's start and `GET /sessions` (with `?eval=`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.dispatcher.api.test_releases_api import CLIENT_KEY, client, dispatcher
from tests.dispatcher.api.test_session_list import listed

EVAL_BODY = {"eval": {"run": "run-1", "scenario": "greets"}}


async def requested(api: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    timeline = await api.get(f"/sessions/{session_id}/timeline", headers=client())
    assert timeline.status_code == 200, timeline.text
    return dict(next(e for e in timeline.json()["events"] if e["event"] == "requested"))


async def test_an_eval_start_is_marked_everywhere_its_session_is_shown_and_listed_apart(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, launched):
        evaluated = await api.post("/start", json={"body": EVAL_BODY, "eval": True, "release": "next"},
                                   headers=client())
        assert evaluated.status_code == 201, evaluated.text
        plain = await api.post("/start", json={"body": {}}, headers=client())
        assert plain.status_code == 201, plain.text
        eval_id, plain_id = evaluated.json()["session_id"], plain.json()["session_id"]
        looked, looked_plain = [await api.get(f"/sessions/{s}", headers=client()) for s in (eval_id, plain_id)]
        start_event, plain_event = await requested(api, eval_id), await requested(api, plain_id)
        evals = await listed(api, CLIENT_KEY, 1, "?eval=true")
        others = await listed(api, CLIENT_KEY, 1, "?eval=false")
        both = await listed(api, CLIENT_KEY, 2)
        bad = await api.get("/sessions?eval=yes", headers=client())
    assert (evaluated.json()["eval"], evaluated.json()["release"]) == (True, "next")
    assert looked.json()["eval"] is True and "eval" not in looked_plain.json()  # left out where it does not apply
    assert (start_event["eval"], start_event["release"], start_event["release_chosen_by"]) == (True, "next", "pinned")
    assert "eval" not in plain_event
    assert [(s["session_id"], s["eval"], s["release"]) for s in evals] == [(eval_id, True, "next")]
    assert [(s["session_id"], s["eval"]) for s in others] == [(plain_id, False)]
    assert {s["session_id"]: s["eval"] for s in both} == {eval_id: True, plain_id: False}
    assert bad.status_code == 422 and "eval: true" in bad.json()["error"]["message"]
    assert [spec.release for spec in launched] == ["next", "stable"]


async def test_an_eval_without_a_release_runs_the_stable_one_never_a_canarys_draw_and_says_so(tmp_path: Path) -> None:
    # The canary takes nearly half the traffic; a drawn start would say `weight` whichever it got.
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=51,next=49") as (api, _):
        answers = [await api.post("/start", json={"body": EVAL_BODY, "eval": True}, headers=client())
                   for _ in range(4)]
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        events = [await requested(api, a.json()["session_id"]) for a in answers]
    assert {(a.json()["release"], a.json()["eval"]) for a in answers} == {("stable", True)}
    assert {(e["release"], e["release_chosen_by"], e["eval"]) for e in events} == {("stable", "stable", True)}


async def test_eval_false_is_a_plain_session_and_an_eval_phone_stream_is_answered_its_token(
        tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, launched):
        plain = await api.post("/start", json={"body": {}, "eval": False, "release": "next"}, headers=client())
        phone = await api.post("/start", json={"transport": "websocket", "eval": True}, headers=client())
        event = await requested(api, plain.json()["session_id"])
    assert plain.status_code == 201 and "eval" not in plain.json() and "eval" not in event, plain.text
    # The token carries the eval mark (and a pin) to the session its call opens (tests/phone, tests/cli).
    assert phone.status_code == 201 and phone.json()["token"], phone.text
    assert len(launched) == 1  # a call's machine waits for its call
