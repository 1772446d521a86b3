"""`POST /sip/eval_tokens` and a SIP call's start that carries one (`eval_token`, as the SIP edge
forwards its INVITE's `X-Voicefleet-Eval`): the call token it is answered carries the eval mark and the
pin to the call's session; any other token refuses the start."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from tests.dispatcher.api.test_releases_api import admin, client, dispatcher


def call_token_claims(answer: httpx.Response) -> dict[str, Any]:
    payload = answer.json()["token"].partition(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def sip_start(api: httpx.AsyncClient, eval_token: str) -> httpx.Response:
    return await api.post("/start", json={"transport": "exotel", "body": {"call_id": "c-1"}, "eval_token": eval_token},
                          headers=client())


async def test_a_sip_start_with_its_keys_token_is_an_evals_call_pinned_to_the_tokens_release(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, _):
        asked = await api.post("/sip/eval_tokens", json={"release": "next"}, headers=client())
        started = await sip_start(api, asked.json()["token"])
        again = await sip_start(api, asked.json()["token"])
    assert asked.status_code == 201, asked.text
    assert (asked.json()["header"], asked.json()["release"]) == ("X-Voicefleet-Eval", "next")
    assert 0 < asked.json()["expires_in"] <= 120
    assert started.status_code == 201, started.text
    claims = call_token_claims(started)
    assert (claims.get("ev"), claims.get("rel")) == (True, "next")
    assert again.status_code == 403 and again.json()["error"]["reason"] == "replayed", again.text


async def test_a_load_tests_token_pins_the_call_without_marking_it_an_evals(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, _):
        asked = await api.post("/sip/eval_tokens", json={"release": "next", "eval": False}, headers=client())
        started = await sip_start(api, asked.json()["token"])
    claims = call_token_claims(started)
    assert ("ev" in claims, claims.get("rel")) == (False, "next"), claims


async def test_an_unknown_release_is_refused_when_the_token_is_asked_for(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, _):
        asked = await api.post("/sip/eval_tokens", json={"release": "v99"}, headers=client())
    assert asked.status_code == 422 and asked.json()["error"]["code"] == "unknown_release", asked.text


async def test_a_forged_or_another_keys_token_refuses_the_start_and_marks_nothing(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, launched):
        others = await api.post("/sip/eval_tokens", json={}, headers=admin())
        foreign = await sip_start(api, others.json()["token"])
        forged = await sip_start(api, "eyJldiI6dHJ1ZX0.AAAA")
    for answer, reason in ((foreign, "foreign"), (forged, "forged")):
        assert answer.status_code == 403, answer.text
        assert (answer.json()["error"]["code"], answer.json()["error"]["reason"]) == ("eval_token_refused", reason)
    assert launched == []


async def test_a_web_start_cannot_carry_an_eval_token(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, _):
        asked = await api.post("/sip/eval_tokens", headers=client())
        web = await api.post("/start", json={"body": {}, "eval_token": asked.json()["token"]}, headers=client())
    assert web.status_code == 422 and "eval_token" in web.json()["error"]["message"], web.text
