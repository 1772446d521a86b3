"""`voicefleet config check` on Fly (no stack deploys it): the sessions Fly's creates hold at once, said as a
note, and a warning naming the apps to list when MAX_CONCURRENT_SESSIONS is above them (never a refusal)."""

from __future__ import annotations

import pytest

from dispatcher.serving import config_command

FLY = {"MACHINES": "fly", "FLY_API_TOKEN": "t" * 24, "FLY_APP": "bots-a", "BOT_IMAGE": "registry.fly.io/bots:1",
       "DISPATCHER_API_KEYS": "k" * 24, "DAILY_API_KEY": "d" * 24}


def _check(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert config_command.main(["check"], env) == 0  # said, not refused
    return capsys.readouterr().out.splitlines()[1:]


def test_fly_notes_each_apps_creates_times_a_four_minute_call(capsys: pytest.CaptureFixture[str]) -> None:
    (note,) = _check({**FLY, "MAX_CONCURRENT_SESSIONS": "240"}, capsys)
    assert note.startswith("note: concurrency ceiling (Fly Machines): 240 sessions at once: 1 app (FLY_APP, "
                           "FLY_APPS) × 1 creates a second (Fly's limit, about 1 a second per app) × 4-minute calls")
    (note,) = _check({**FLY, "FLY_APPS": "bots-a, bots-b,bots-c", "MAX_CONCURRENT_SESSIONS": "700"}, capsys)
    assert ": 720 sessions at once: 3 apps" in note  # FLY_APP counted once


def test_sessions_past_it_are_warned_with_the_apps_that_would_hold_them(capsys: pytest.CaptureFixture[str]) -> None:
    note, warning = _check({**FLY, "FLY_APPS": "bots-b", "MAX_CONCURRENT_SESSIONS": "500"}, capsys)
    assert ": 480 sessions at once: 2 apps" in note
    assert warning == ("warning: MAX_CONCURRENT_SESSIONS=500 is above the 480 sessions Fly's creates hold at once: "
                       "past it starts wait for a create and fail. Each app adds 240: FLY_APP and FLY_APPS together "
                       "must name 3 different apps (list 1 more in FLY_APPS), or lower MAX_CONCURRENT_SESSIONS")
    note, warning = _check({**FLY, "FLY_CREATE_RATE": "0.5", "MAX_CONCURRENT_SESSIONS": "500"}, capsys)
    assert "120 sessions at once: 1 app (FLY_APP, FLY_APPS) × 0.5 creates a second (FLY_CREATE_RATE)" in note
    assert "Each app adds 120: FLY_APP and FLY_APPS together must name 5 different apps (list 4 more in FLY_APPS)" \
        in warning


def test_other_providers_get_no_fly_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert _check({"MAX_CONCURRENT_SESSIONS": "5000"}, capsys) == []
