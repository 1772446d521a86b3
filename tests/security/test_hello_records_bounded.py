"""The channel's records of hellos are bounded without losing what protects a live session: owner
records past the cap go oldest first but never a session whose bot is connected, and an idle
credential's "already used" record is forgotten once the credential has expired (it can no longer
be presented), not a second before."""

from __future__ import annotations

import pytest

from botchannel.contract import Hello
from dispatcher.channel import admission
from dispatcher.channel.admission import HelloRules
from dispatcher.channel.credentials import BotGrant
from dispatcher.store.local import LocalClaims


def session_hello(session_id: str, machine_id: str = "evil") -> tuple[BotGrant, Hello]:
    return BotGrant("session", session_id, 2**40), Hello(machine_id=machine_id, session_id=session_id)


async def test_owner_records_are_bounded_and_a_live_sessions_record_is_never_evicted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission, "MAX_OWNERS_KEPT", 3)
    rules = HelloRules(LocalClaims())
    live = {"live"}
    rules.own("live", "m-live", live)
    for n in range(6):
        rules.own(f"s-{n}", f"m-{n}", live)
    kept = {s for s in ("live", *(f"s-{n}" for n in range(6))) if await rules.refusal(*session_hello(s))}
    assert kept == {"live", "s-4", "s-5"}  # three records: the live one, then the newest


async def test_an_idle_credentials_record_is_forgotten_once_it_expired_and_not_before() -> None:
    now = [50.0]
    rules = HelloRules(LocalClaims(), clock=lambda: now[0])
    first = BotGrant("idle", "rsv-1", 100)
    assert await rules.refusal(first, Hello(machine_id="rsv-1")) is None
    now[0] = 99.0
    assert await rules.refusal(BotGrant("idle", "rsv-2", 200), Hello(machine_id="rsv-2")) is None
    assert await rules.refusal(first, Hello(machine_id="rsv-1")) == "credential already used"
    now[0] = 100.0  # rsv-1's credential has expired: the channel refuses it before any hello
    assert await rules.refusal(BotGrant("idle", "rsv-3", 300), Hello(machine_id="rsv-3")) is None
    assert await rules.refusal(first, Hello(machine_id="rsv-1")) is None  # its record is gone
