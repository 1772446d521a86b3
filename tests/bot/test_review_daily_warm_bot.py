"""A hostile review of a Daily dial-in call's warm transfer, on the bot's side (bot/daily_mode.py): the person
dialled into the call's room (dispatcher/phone/daily_warm.py, its leg's user `transfer-…`) is a participant of
the room like the caller, and the host watches every participant's leaving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import bot.daily_mode as daily_mode
from bot.lifecycle import EndReason, SessionLifecycle


class _Transport:
    """Stands in for the user's `DailyTransport`: only the handlers the host attaches to it."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}

    def add_event_handler(self, name: str, handler: Callable[..., Any]) -> None:
        self.handlers[name] = handler


async def test_the_person_of_a_warm_transfer_leaving_does_not_end_the_callers_session(
        monkeypatch: pytest.MonkeyPatch) -> None:
    attached: list[Callable[[Any], None]] = []
    lifecycles: list[SessionLifecycle] = []

    class Session:  # the user's bot is not run: only the host's watch of its transport is under test
        def __init__(self, user_bot: object, lifecycle: SessionLifecycle, watch: object) -> None:
            lifecycles.append(lifecycle)

        def start(self, arguments: object) -> None:
            pass

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(daily_mode, "UserBotSession", Session)
    monkeypatch.setattr(daily_mode, "SessionWatch", lambda: SimpleNamespace(install=lambda: None))
    monkeypatch.setattr(daily_mode, "watch_daily", attached.append)
    config = SimpleNamespace(channel=None, max_duration=600.0, connect_timeout=60.0, room_url="https://x.daily.co/r",
                             token="t", body={}, session_id="s", idle_timeout=300.0)
    events = SimpleNamespace(emit=lambda *args, **kwargs: None)
    serving = asyncio.create_task(daily_mode.serve(config, object(), events))  # type: ignore[arg-type]
    try:
        while not (attached and lifecycles):
            await asyncio.sleep(0.01)
        transport = _Transport()
        attached[0](transport)
        caller = {"id": "sip-caller", "info": {"userId": "sip-caller", "isLocal": False}}
        person = {"id": "dial-out-1", "info": {"userId": "transfer-0123456789abcdef01234567", "userName": "transfer",
                                               "isLocal": False}}
        await transport.handlers["on_first_participant_joined"](transport, caller)
        await transport.handlers["on_participant_left"](transport, person, "leftCall")
        assert not lifecycles[0].ended  # the caller is still in the room, with this bot
        await transport.handlers["on_participant_left"](transport, caller, "leftCall")
        assert lifecycles[0].reason is EndReason.PARTICIPANT_LEFT  # the caller's own leaving still ends it
    finally:
        if lifecycles:
            lifecycles[0].end(EndReason.SIGNAL)
        await serving
