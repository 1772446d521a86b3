"""The recording policy at the API: a rule per API key name checked against the keys at start-up (or,
where an admin may make keys at runtime, applied to the runtime key of that name), a release the
catalogue lacks shown in `GET /status`, and a start's `recording` field lowering its session's policy
field by field, never raising it. The dispatcher in-process, its bots the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, SettingsError, hash_api_key
from tests.dispatcher.api.test_artifacts_api import ADMIN, ADMIN_KEY, MINE, OTHER_KEY, THEIRS
from tests.dispatcher.conftest import API_KEY, STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import serving

NAMED = Settings(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}),
                 api_key_names=((hash_api_key(API_KEY), "support"), (hash_api_key(OTHER_KEY), "acme")),
                 admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))


@asynccontextmanager
async def dispatcher(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2.0, bot_env=STANDIN_ENV))
    app = create_app(NAMED, env=env, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as client:
        try:
            yield client
        finally:
            await app.state.voicefleet.aclose()


def test_a_rule_for_a_key_name_no_api_key_has_stops_the_start_naming_the_keys_there_are(tmp_path: Path) -> None:
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path), "RECORDING_RULES": "key:acme-eu audio=off"}
    no_admin = replace(NAMED, admin_key_hashes=frozenset())  # so no key can be made at runtime
    with pytest.raises(SettingsError, match=r"names the API key acme-eu.*the named keys are acme, support"):
        create_app(no_admin, env=env, machines=machines, rooms=None)


async def test_a_rule_for_a_runtime_key_applies_to_the_sessions_its_secret_starts(tmp_path: Path) -> None:
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path),
           "RECORDING_RULES": "key:beta transcript=off"}
    async with dispatcher(env) as api:  # beta is no key of the settings: a runtime key's name
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        made = await api.post("/keys", json={"name": "beta"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        beta = {"Authorization": f"Bearer {made.json()['secret']}"}
        plans = {}
        for who, headers in (("beta", beta), ("support", MINE)):
            started = await api.post("/start", json={}, headers=headers)
            assert started.status_code == 201, started.text
            plan = recordings._open[started.json()["session_id"]].plan
            plans[who] = (plan.audio, plan.transcript)
        assert plans == {"beta": (True, False), "support": (True, True)}
        refused = await api.post("/start", json={"recording": {"transcript": "on"}}, headers=beta)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "recording_not_allowed"


async def test_a_rule_for_an_unknown_release_is_shown_in_status(tmp_path: Path) -> None:
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path), "RECORDING_RULES": "release:v9 days=7"}
    async with dispatcher(env) as api:
        recordings = (await api.get("/status", headers=ADMIN)).json()["recordings"]
        assert recordings["unknown_releases"] == ["v9"] and recordings["rules"] == "release:v9 days=7"


async def test_a_start_lowers_its_recording_field_by_field_and_is_refused_more_than_its_key_gives(
        tmp_path: Path) -> None:
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path), "RECORDING_RULES": "key:acme transcript=off"}
    async with dispatcher(env) as api:
        recordings = api._transport.app.state.voicefleet.artifacts.recordings  # type: ignore[attr-defined]
        started = await api.post("/start", json={"recording": {"audio": "off", "transcript": "on"}}, headers=MINE)
        assert started.status_code == 201, started.text
        plan = recordings._open[started.json()["session_id"]].plan
        assert (plan.audio, plan.transcript) == (False, True)

        refused = await api.post("/start", json={"recording": {"transcript": "on"}}, headers=THEIRS)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "recording_not_allowed"
        assert "transcript=on (policy: off)" in refused.json()["error"]["message"]
        unknown = await api.post("/start", json={"recording": {"video": "on"}}, headers=THEIRS)
        assert unknown.status_code == 422


def test_a_local_dispatcher_recording_with_consent_refuses_an_announcement_that_is_not_audio(tmp_path: Path) -> None:
    (tmp_path / "notice.wav").write_text("not audio")
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"RECORDING": "consent", "RECORDING_DESTINATION": str(tmp_path),
           "RECORDING_ANNOUNCEMENT": str(tmp_path / "notice.wav")}
    with pytest.raises(SettingsError, match="RECORDING_ANNOUNCEMENT: .* is not a WAV file"):
        create_app(NAMED, env=env, machines=machines, rooms=None)
