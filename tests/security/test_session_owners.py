"""Findings 7, 5 and 8: a session belongs to the API key that started it.

7: another key gets 404 on read, offer and delete (it used to read, signal and stop it).
5: unknown ids cost no provider call, and reads are limited per key (a flood of GETs on random
   ids used to spend the provider list budget that every tenant's admission needs).
8: keyless local mode answers loopback Host names only (DNS rebinding), and its session ids for
   an Idempotency-Key are not the same on every developer's machine.
"""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from dispatcher.settings import Settings, hash_api_key
from tests.security.conftest import KEY_A, KEY_B, WAIT, MakeDispatcher, provider_reads

A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
OFFER = {"sdp": "v=0\r\n", "type": "offer"}


def keyed() -> Settings:
    return Settings(api_key_hashes=frozenset({hash_api_key(KEY_A), hash_api_key(KEY_B)}), max_concurrent_sessions=50)


async def test_another_key_can_neither_read_nor_signal_nor_stop_a_session(make_dispatcher: MakeDispatcher) -> None:
    d = await make_dispatcher(keyed())
    session_id = (await d.client.post("/start?wait=started", json={"body": {}}, headers=A)).json()["session_id"]
    channels = d.state.channels
    assert await channels.wait_until(lambda: channels.link_for(session_id) is not None, WAIT)
    path = f"/sessions/{session_id}"

    read = await d.client.get(path, headers=B)
    offered = await d.client.post(f"{path}/api/offer", json=OFFER, headers=B)
    stopped = await d.client.delete(path, headers=B)

    assert [read.status_code, offered.status_code, stopped.status_code] == [404, 404, 404]
    mine = await d.client.get(path, headers=A)  # control: the owner still sees it running
    assert mine.status_code == 200 and mine.json()["status"] in ("started", "joined")
    assert (await d.client.delete(path, headers=A)).status_code in (202, 204)


async def test_reads_of_unknown_ids_cost_no_provider_call_and_are_limited_per_key(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refill of one read per 1000 s: the 205 requests below take seconds on a loaded machine, and at
    # the default 20/s the bucket refilled in that time, letting a DELETE through.
    d = await make_dispatcher(dataclasses.replace(keyed(), read_rate_per_key=0.001))
    session_id = (await d.client.post("/start", json={"body": {}}, headers=A)).json()["session_id"]
    asked = provider_reads(d.state.machines, monkeypatch)
    answers = [(await d.client.get(f"/sessions/{secrets.token_hex(12)}", headers=B)).status_code
               for _ in range(200)]
    deletes = [(await d.client.delete(f"/sessions/{secrets.token_hex(12)}", headers=B)).status_code
               for _ in range(5)]

    assert asked == [], "unknown ids were looked up at the provider"
    assert set(answers) == {404, 429} and answers[0] == 404
    assert set(deletes) == {429}  # the same key's budget
    assert (await d.client.get(f"/sessions/{session_id}", headers=A)).status_code == 200  # control: key A unaffected
    assert asked == [session_id]


async def test_keyless_mode_answers_loopback_host_names_only(make_dispatcher: MakeDispatcher) -> None:
    d = await make_dispatcher()
    rebound = await d.client.post("/start", json={"body": {"via": "dns-rebinding"}},
                                  headers={"Host": f"rebind.attacker.example:{d.port}"})
    assert rebound.status_code in (400, 421)
    assert rebound.json()["error"]["code"] == "untrusted_host"
    for host in ("127.0.0.1", f"localhost:{d.port}", f"[::1]:{d.port}"):  # control
        assert (await d.client.get("/healthz", headers={"Host": host})).status_code == 200


async def test_keyless_session_ids_for_an_idempotency_key_differ_between_runs(make_dispatcher: MakeDispatcher) -> None:
    first, second = await make_dispatcher(), await make_dispatcher()
    key = {"Idempotency-Key": "call-1"}
    one = (await first.client.post("/start", json={"body": {}}, headers=key)).json()["session_id"]
    replay = (await first.client.post("/start", json={"body": {}}, headers=key)).json()["session_id"]
    other = (await second.client.post("/start", json={"body": {}}, headers=key)).json()["session_id"]

    assert replay == one  # control: a retry still finds its session
    assert one != "ddcdf734cb781bab1efd4f79" and other != one


async def test_with_keys_only_healthz_is_public(make_dispatcher: MakeDispatcher) -> None:
    d = await make_dispatcher(keyed())
    for path in ("/docs", "/openapi.json", "/metrics", f"/sessions/{'0' * 24}"):
        assert (await d.client.get(path)).status_code == 401, path
    assert (await d.client.get("/openapi.json", headers=A)).status_code == 200  # control: the key opens it
    assert (await d.client.get("/healthz")).status_code == 200
