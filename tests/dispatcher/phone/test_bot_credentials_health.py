"""`/healthz` of a dispatcher whose bots run here says which carriers' credentials its bots are not
given, so a phone load test (or a person) learns it before a call ends `bot_failed`."""

from __future__ import annotations

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings


async def test_healthz_names_each_carriers_credentials_the_bots_lack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000001")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "")  # set, and empty: a serializer refuses it as missing
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    machines = LocalMachines(LocalSettings(bot_env=("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")))
    app = create_app(Settings(), env={}, machines=machines, rooms=None)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            health = (await api.get("/healthz")).json()
    finally:
        await app.state.voicefleet.aclose()
    assert health["bots_lack"] == {"twilio": ["TWILIO_AUTH_TOKEN"], "telnyx": ["TELNYX_API_KEY"],
                                   "plivo": ["PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"]}


def test_a_variable_not_named_for_the_bots_is_not_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000001")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    named = LocalMachines(LocalSettings(bot_env=("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"))).bot_variables()
    assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} <= named
    assert "TWILIO_AUTH_TOKEN" not in LocalMachines(LocalSettings(bot_env=("TWILIO_ACCOUNT_SID",))).bot_variables()
