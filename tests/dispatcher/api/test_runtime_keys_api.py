"""API keys made and revoked at runtime (dispatcher/api/routers/keys.py) in one real dispatcher app:
the secret shown once, stored as scrypt only, a session started with it, refused once revoked, a
settings key's name never taken, rotation keeping the name's sessions, every change audited."""

from __future__ import annotations

import json
import threading

import httpx

from dispatcher.api import runtime_keys
from dispatcher.api.auth import Authenticator
from dispatcher.api.runtime_keys import RuntimeKeys, slow_hash
from dispatcher.regions.peers import Peer
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY, ClientFactory, _ClientContext

ADMIN_KEY = "vf-runtime-admin-7c1e90ad42"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TOKEN = "runtime-keys-deployment-secret-0123456789"


def keyed(make_api: ClientFactory) -> _ClientContext:
    settings_key = hash_api_key(API_KEY)
    return make_api(api_key_hashes=frozenset({settings_key}), api_key_names=((settings_key, "team"),),
                    admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}), bot_channel_token=TOKEN)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_created_key_starts_a_session_and_a_revoked_one_is_refused(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        made = await api.post("/keys", json={"name": "acme"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert secret.startswith(f"vf_{made.json()['secret_id']}_")
        started = await api.post("/start", json={}, headers=bearer(secret))
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        listed = (await api.get("/keys", headers=ADMIN)).json()["keys"]
        assert [(k["name"], k["source"]) for k in listed] == [("team", "settings"), ("acme", "runtime")]
        assert json.dumps(listed).find(secret) == -1  # the secret is never shown again
        assert (await api.delete("/keys/acme", headers=ADMIN)).status_code == 204
        refused = await api.get(f"/sessions/{session_id}", headers=bearer(secret))
        assert refused.status_code == 401
        # the revoked key's session stays the admin's to read and stop
        assert (await api.get(f"/sessions/{session_id}", headers=ADMIN)).status_code == 200
        assert (await api.delete(f"/sessions/{session_id}", headers=ADMIN)).status_code in (202, 204)
        actions = [(line["action"], line["name"]) for line in (await api.get("/audit/runtime", headers=ADMIN)).json()[
            "lines"]]
        assert actions == [("key.revoke", "acme"), ("key.create", "acme")]


async def test_a_rotation_keeps_the_names_sessions(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        old = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()
        session_id = (await api.post("/start", json={}, headers=bearer(old["secret"]))).json()["session_id"]
        new = await api.post("/keys", json={"name": "acme", "another": True}, headers=ADMIN)
        assert new.status_code == 201, new.text
        assert (await api.delete(f"/keys?secret_id={old['secret_id']}", headers=ADMIN)).status_code == 204
        assert (await api.get("/sessions", headers=bearer(old["secret"]))).status_code == 401
        read = await api.get(f"/sessions/{session_id}", headers=bearer(new.json()["secret"]))
        assert read.status_code == 200, read.text


async def test_bad_key_requests_are_one_line_each(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        await api.post("/keys", json={"name": "acme"}, headers=ADMIN)
        cases = [
            ({"name": "team"}, 409, "key_name_taken"),  # a settings key's name
            ({"name": "acme"}, 409, "key_name_taken"),
            ({"name": "Not A Name"}, 400, "invalid_key_name"),
            ({"name": "ghost", "another": True}, 404, "unknown_key"),
            ({"nam": "x"}, 400, "invalid_key_request"),
        ]
        for body, status, code in cases:
            answer = await api.post("/keys", json=body, headers=ADMIN)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
            assert "\n" not in answer.json()["error"]["message"]
        assert (await api.delete("/keys/ghost", headers=ADMIN)).json()["error"]["code"] == "unknown_key"
        assert (await api.delete("/keys?secret_id=0123456789ab", headers=ADMIN)).status_code == 404
        assert (await api.post("/keys", json={"name": "x"}, headers=bearer(API_KEY))).status_code == 403
        # A settings key's name is revoked at runtime as a runtime key's is (one model of a key).
        assert (await api.delete("/keys/team", headers=ADMIN)).status_code == 204
        assert (await api.get("/sessions", headers=bearer(API_KEY))).status_code == 401
        assert (await api.delete("/keys/team", headers=ADMIN)).json()["error"]["code"] == "unknown_key"


async def test_a_guessed_secret_with_a_real_id_is_refused(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        made = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()
        guess = f"vf_{made['secret_id']}_{'A' * 43}"
        assert (await api.post("/start", json={}, headers=bearer(guess))).status_code == 401


def scrypt_threads(monkeypatch) -> list[threading.Thread]:  # type: ignore[no-untyped-def]
    """The threads each scrypt runs in from now on."""
    threads: list[threading.Thread] = []

    def recorded(secret: str, salt: bytes) -> str:
        threads.append(threading.current_thread())
        return slow_hash(secret, salt)

    monkeypatch.setattr(runtime_keys, "slow_hash", recorded)
    return threads


async def test_healthz_shows_the_peers_load_to_an_admin_key_only_and_costs_a_runtime_key_no_scrypt(
        make_api: ClientFactory, monkeypatch) -> None:
    """/healthz answers anyone (a balancer): each peer's reachability. What a peer last advertised
    (its room, idle bots, demand, cold start, URL) is the deployment's load, an admin's read as at
    /metrics and /status: a client key, settings' or runtime, sees reachability only, and a runtime
    secret sent there pays no scrypt at all (it is never checked)."""
    context = keyed(make_api)
    async with context as api:
        secret = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()["secret"]
        state = context.app.state.voicefleet
        state.peers.by_name["eu"] = Peer("eu", "https://eu.example.com")
        threads = scrypt_threads(monkeypatch)
        for client in (bearer(secret), bearer(API_KEY), {}, bearer("no-such-key-0123456789")):
            answer = await api.get("/healthz", headers=client)
            assert answer.status_code == 200, answer.text
            assert answer.json()["regions"] == {"eu": {"reachable": False}}, client
        assert not threads
        admin = (await api.get("/healthz", headers=ADMIN)).json()["regions"]["eu"]
        assert admin["url"] == "https://eu.example.com" and {"capacity", "round_trip_ms", "problem"} <= set(admin)


async def test_healthz_writes_a_peers_lone_surrogate_as_u_fffd(make_api: ClientFactory) -> None:
    """A route that builds its own JSON answer (/healthz: what a peer region last said) writes it as
    every answer is, a lone surrogate as U+FFFD, never a 500."""
    context = keyed(make_api)
    async with context as api:
        peer = Peer("eu", "https://eu.example.com")
        peer.problem = "REGIONS differ: \ud800"
        context.app.state.voicefleet.peers.by_name["eu"] = peer
        answer = await api.get("/healthz", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json()["regions"]["eu"]["problem"] == "REGIONS differ: \ufffd"


async def test_the_releases_client_view_checks_a_runtime_key_off_the_event_loop_by_its_address(
        make_api: ClientFactory, monkeypatch) -> None:
    """GET /releases answers a client key too: its scrypt runs in a worker thread (a forged secret
    passing an id's check, revoked ids' among them, never stalls the loop), and wrong secrets are
    counted by the sender's address, not one bucket for every sender."""
    context = keyed(make_api)
    async with context as api:
        made = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()
        threads = scrypt_threads(monkeypatch)
        answer = await api.get("/releases", headers=bearer(made["secret"]))
        assert answer.status_code == 200, answer.text
        assert threads and threading.current_thread() not in threads
        guess = bearer(f"vf_{made['secret_id']}_{'A' * 43}")
        for _ in range(runtime_keys.FAILURES_PER_WINDOW):
            assert (await api.get("/releases", headers=guess)).status_code == 401
        held = await api.get("/releases", headers=guess)
        assert held.status_code == 429, held.text  # this sender's wrong secrets
        other = httpx.AsyncClient(transport=httpx.ASGITransport(app=context.app, client=("10.0.0.2", 4000)),
                                  base_url="http://127.0.0.1")
        async with other:
            elsewhere = await other.get("/releases", headers=guess)
        assert elsewhere.status_code == 401, elsewhere.text  # another address is not held back by them


def test_a_settings_key_shaped_like_a_runtime_secret_is_still_that_key() -> None:
    shaped = "vf_0123456789ab_a-settings-key-that-reads-like-a-runtime-one"
    auth = Authenticator(frozenset({hash_api_key(shaped)}), names={hash_api_key(shaped): "team"},
                         owner_secret=b"x" * 32)
    auth.runtime = RuntimeKeys()
    assert auth.identify(f"Bearer {shaped}").name == "team"


async def test_a_secret_sent_as_a_secret_id_is_refused_and_never_echoed(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        made = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()
        refused = await api.delete("/keys", params={"secret_id": made["secret"]}, headers=ADMIN)
        assert refused.status_code == 400, refused.text
        assert made["secret"] not in refused.text and made["secret_id"] not in refused.text
        assert (await api.post("/start", json={}, headers=bearer(made["secret"]))).status_code == 201


async def test_a_used_and_revoked_name_is_not_given_to_a_new_key_unasked(make_api: ClientFactory) -> None:
    """A name owns its sessions and recordings after its keys are gone: a fresh key under it would
    read another party's calls, so only `another` (the same party, said so) continues the name."""
    context = keyed(make_api)
    async with context as api:
        old = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()
        session_id = (await api.post("/start", json={}, headers=bearer(old["secret"]))).json()["session_id"]
        await context.app.state.voicefleet.runtime._flush_uses()  # what the once-a-second read does
        assert (await api.delete("/keys/acme", headers=ADMIN)).status_code == 204
        fresh = await api.post("/keys", json={"name": "acme"}, headers=ADMIN)
        assert fresh.status_code == 409 and fresh.json()["error"]["code"] == "key_name_used", fresh.text
        same_party = await api.post("/keys", json={"name": "acme", "another": True}, headers=ADMIN)
        assert same_party.status_code == 201, same_party.text
        read = await api.get(f"/sessions/{session_id}", headers=bearer(same_party.json()["secret"]))
        assert read.status_code == 200, read.text
        assert (await api.post("/keys", json={"name": "beta"}, headers=ADMIN)).status_code == 201  # a new name


async def test_a_runtime_key_reaches_no_admin_route_and_no_page_of_another_site_changes_anything(
        make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        secret = (await api.post("/keys", json={"name": "acme"}, headers=ADMIN)).json()["secret"]
        for method, route, body in (("GET", "/keys", None), ("POST", "/keys", {"name": "mine"}),
                                    ("DELETE", "/keys/acme", None), ("GET", "/capacity", None),
                                    ("PATCH", "/capacity", {"sessions": 1}), ("GET", "/audit/runtime", None)):
            answered = await api.request(method, route, json=body, headers=bearer(secret))
            assert answered.status_code in (401, 403), (route, answered.text)
        foreign = {**ADMIN, "Origin": "https://evil.example"}
        for method, route, body in (("POST", "/keys", {"name": "mine"}), ("DELETE", "/keys/acme", None),
                                    ("PATCH", "/capacity", {"sessions": 1})):
            answered = await api.request(method, route, json=body, headers=foreign)
            assert answered.status_code == 403 and "origin_not_allowed" in answered.text, (route, answered.text)
        assert [k["name"] for k in (await api.get("/keys", headers=ADMIN)).json()["keys"]] == ["team", "acme"]
