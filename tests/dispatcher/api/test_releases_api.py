"""The releases' admin surface and a start's release, through the app with local bots (the stand-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, SettingsError, hash_api_key
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving

CLIENT_KEY, ADMIN_KEY = "client-key-0123456789", "admin-key-0123456789"
Launched = list[LaunchSpec]


@asynccontextmanager
async def dispatcher(tmp_path: Path, *, keys: bool = True,
                     **env: str) -> AsyncIterator[tuple[httpx.AsyncClient, Launched]]:
    for name in ("bot.py", "bot_v2.py"):
        (tmp_path / name).write_text("async def bot(runner_args): ...\n")
    env = {"BOT_RELEASES": f"stable={tmp_path}/bot.py,next={tmp_path}/bot_v2.py", **env}
    settings = Settings(api_key_hashes=frozenset({hash_api_key(CLIENT_KEY)}) if keys else frozenset(),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}) if keys else frozenset())
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    launched: Launched = []
    launch = machines.launch

    async def recording(spec: LaunchSpec) -> LaunchResult:  # what the provider was asked to launch, then launched
        launched.append(spec)
        return await launch(spec)

    machines.launch = recording  # type: ignore[method-assign]
    app = create_app(settings, env=env, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as client:
        try:
            yield client, launched
        finally:
            await app.state.voicefleet.aclose()


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def client() -> dict[str, str]:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


async def test_releases_lists_each_release_with_its_weight_and_the_stable_one(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=90,next=10") as (api, _):
        answer = await api.get("/releases", headers=admin())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stable"] == "stable"
    assert [(r["name"], r["weight"], r["stable"]) for r in body["releases"]] == [("stable", 90, True),
                                                                                ("next", 10, False)]


async def test_a_client_key_can_never_change_releases_and_nothing_changes(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, _):
        refused = await api.put("/releases/next", json={"weight": 50}, headers=client())
        missing = await api.post("/releases/rollback")
        after = (await api.get("/releases", headers=admin())).json()
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
    assert missing.status_code == 401
    assert [r["weight"] for r in after["releases"]] == [100, 0]


@pytest.mark.parametrize(("method", "path", "body"), [("PUT", "/releases", [1]), ("PUT", "/releases/next", [1]),
                                                    ("PUT", "/releases", {"weights": 5})])
async def test_without_the_admin_key_a_body_is_never_read_so_no_answer_depends_on_it(
        tmp_path: Path, method: str, path: str, body: object) -> None:
    async with dispatcher(tmp_path) as (api, _):
        missing = await api.request(method, path, json=body)
        forged = await api.request(method, path, json=body, headers={"Authorization": "Bearer forged-key-0123456789"})
        as_client = await api.request(method, path, json=body, headers=client())
    assert (missing.status_code, forged.status_code, as_client.status_code) == (401, 401, 403)
    assert as_client.json()["error"]["code"] == "admin_key_required"


async def test_a_weight_change_then_rollback_are_audited_with_who_from_and_to(tmp_path: Path) -> None:
    # RELEASE_WEIGHTS names `next`: the developer's own first configuration, so it needs no smoke session.
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=100,next=0") as (api, _):
        changed = await api.put("/releases/next", json={"weight": 25}, headers=admin())
        rolled = await api.post("/releases/rollback", headers=admin())
        again = await api.post("/releases/rollback", headers=admin())
        trail = (await api.get("/releases/history", headers=admin())).json()["changes"]
    assert [r["weight"] for r in changed.json()["releases"]] == [75, 25]
    assert [r["weight"] for r in rolled.json()["releases"]] == [100, 0]
    assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_to_roll_back"
    assert [c["to"] for c in trail[:2]] == [{"stable": 100, "next": 0}, {"stable": 75, "next": 25}]
    assert trail[0]["by"].startswith("admin-") and ADMIN_KEY not in str(trail)


async def test_a_rollback_sent_with_the_version_it_was_asked_about_is_refused_once_the_traffic_changed(
        tmp_path: Path) -> None:
    # The dashboard's admin is asked "stable from 20 % to 0 %" (next takes everything); meanwhile another
    # admin sets stable to 0. Sent unconditionally, the rollback would then go back from next to the
    # release stable before it, the opposite of what was asked: with the version shown, it is refused.
    async with dispatcher(tmp_path, RELEASE_WEIGHTS="stable=100,next=0") as (api, _):
        assert (await api.post("/releases/next/promote", headers=admin())).status_code == 200
        assert (await api.put("/releases/stable", json={"weight": 20}, headers=admin())).status_code == 200
        shown = (await api.get("/releases", headers=admin())).json()
        assert (await api.put("/releases/stable", json={"weight": 0}, headers=admin())).status_code == 200
        now = (await api.get("/releases", headers=admin())).json()
        stale = await api.post("/releases/rollback", json={"version": shown["version"]}, headers=admin())
        after = (await api.get("/releases", headers=admin())).json()
        current = await api.post("/releases/rollback", json={"version": now["version"]}, headers=admin())
        malformed = [await api.post("/releases/rollback", json=body, headers=admin())
                     for body in ({"version": "latest"}, {"version": now["version"], "to": "stable"}, [1])]
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "releases_changed", stale.text
    assert stale.json()["error"]["version"] == now["version"]
    assert (after["version"], after["stable"]) == (now["version"], "next")
    assert current.status_code == 200 and current.json()["stable"] == "stable", current.text  # what was shown now
    # Where a rollback from a stable release taking everything goes is in the admin's view, to be shown first.
    assert (now["previous_stable"], current.json()["previous_stable"]) == ("stable", None)
    assert [(m.status_code, m.json()["error"]["code"]) for m in malformed] == [(422, "invalid_rollback")] * 3


@pytest.mark.parametrize(("path", "payload", "code"), [
    ("/releases/next", {"weight": 101}, "invalid_weight"),
    ("/releases/next", {"weight": "50"}, "invalid_weight"),
    ("/releases/nope", {"weight": 5}, "unknown_release"),
    ("/releases", {"weights": {"stable": 50, "next": 40}}, "weights_not_100"),
    ("/releases", {"weights": {"stable": 90, "other": 10}}, "unknown_release"),
    # A field the route does not read (a reason, a typo) is refused, never dropped without a word.
    ("/releases", {"weights": {"stable": 10, "next": 90}, "reason": "ticket 12"}, "invalid_weight"),
])
async def test_bad_traffic_is_refused_with_its_reason_and_nothing_changes(tmp_path: Path, path: str,
                                                                        payload: dict[str, object], code: str) -> None:
    async with dispatcher(tmp_path) as (api, _):
        refused = await api.put(path, json=payload, headers=admin())
        after = (await api.get("/releases", headers=admin())).json()
    assert refused.status_code == 422 and refused.json()["error"]["code"] == code, refused.text
    assert [r["weight"] for r in after["releases"]] == [100, 0]


async def test_a_pinned_start_launches_its_releases_bot_file_and_says_which(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, launched):
        pinned = await api.post("/start", json={"release": "next"}, headers=client())
        drawn = await api.post("/start", json={}, headers=client())
        looked = await api.get(f"/sessions/{pinned.json()['session_id']}", headers=client())
        timeline = await api.get(f"/sessions/{pinned.json()['session_id']}/timeline", headers=client())
    assert pinned.status_code == 201 and pinned.json()["release"] == "next", pinned.text
    assert drawn.json()["release"] == "stable" and looked.json()["release"] == "next"
    assert [(s.release, s.image) for s in launched] == [("next", str(tmp_path / "bot_v2.py")),
                                                        ("stable", str(tmp_path / "bot.py"))]
    requested = next(e for e in timeline.json()["events"] if e["event"] == "requested")
    assert (requested["release"], requested["release_chosen_by"]) == ("next", "pinned")


async def test_an_unknown_pin_is_422_naming_the_live_releases_and_starts_nothing(tmp_path: Path) -> None:
    async with dispatcher(tmp_path) as (api, launched):
        refused = await api.post("/start", json={"release": "nope"}, headers=client())
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_release"
    assert "stable, next" in refused.json()["error"]["message"] and launched == []


async def test_a_keyless_local_dispatcher_lets_its_loopback_caller_change_traffic(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, keys=False, RELEASE_WEIGHTS="stable=100,next=0") as (api, _):
        promoted = await api.post("/releases/next/promote")
    assert promoted.status_code == 200 and promoted.json()["stable"] == "next"


async def test_a_keyless_dispatcher_behind_a_tunnel_lets_no_one_change_traffic_through_its_public_name(
        tmp_path: Path) -> None:
    async with dispatcher(tmp_path, keys=False, PHONE_PUBLIC_URL="https://calls-tunnel.example.com") as (api, _):
        through = await api.post("/releases/next/promote", headers={"Host": "calls-tunnel.example.com"})
        listed = await api.get("/releases", headers={"Host": "calls-tunnel.example.com"})
        after = (await api.get("/releases")).json()
    assert (through.status_code, listed.status_code) == (403, 403), through.text
    assert through.json()["error"]["code"] == "admin_loopback_only"
    assert "DISPATCHER_ADMIN_KEYS" in through.json()["error"]["message"]
    assert after["stable"] == "stable"


def test_an_admin_key_that_is_also_a_client_key_stops_the_dispatcher() -> None:
    with pytest.raises(SettingsError, match="never change releases"):
        Settings.from_env({"DISPATCHER_API_KEYS": "k" * 20, "DISPATCHER_ADMIN_KEYS": "k" * 20})


