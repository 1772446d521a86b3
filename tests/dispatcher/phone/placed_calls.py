"""What the tests of calls placed through a carrier's Calls API read back (test_twilio_dial.py,
test_telnyx_dial.py): the session's timeline, once written, and its outcomes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

PUBLIC = "https://calls.example.com"  # the dispatcher's PHONE_PUBLIC_URL: where the carrier sends callbacks
TWILIO_CALL = {"to": "+14155550100", "from": "+14155550199", "carrier": "twilio"}


async def events(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    state = api.app.state.voicefleet  # type: ignore[attr-defined]
    await state.sessions.timeline.settled()
    return list(await state.sessions.timeline.read(session_id))


def outcomes(timeline: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["event"], e.get("outcome") or e.get("reason")) for e in timeline
            if e["event"] in ("call_outcome", "ended")]


async def placed_once_though_unanswered(api: httpx.AsyncClient, call: dict[str, Any], status: int,
                                        code: str) -> str:
    """A create the carrier's fake answers `status` (a 5xx, or a 2xx page not its JSON) though it queued the
    call: the dispatcher's `504` (`code`), then the same Idempotency-Key again, answered `200` with the first
    session; that session's id."""
    key = {"Idempotency-Key": f"queued-{status}"}
    unsure = await api.post("/calls", json=call, headers=key)
    assert unsure.status_code == 504 and unsure.json()["error"]["code"] == code, unsure.text
    again = await api.post("/calls", json=call, headers=key)
    assert again.status_code == 200, again.text  # the first session, not a second call
    # The 504 names the session to follow, for a client that would otherwise place the call again.
    assert unsure.json()["error"]["session_id"] == again.json()["session_id"], unsure.text
    assert again.json()["session_id"] in unsure.json()["error"]["message"]
    return str(again.json()["session_id"])


def calls_allowed(carrier: str, numbers: tuple[str, ...] = ("+14155550199",), caller: str = "local") -> dict[str, str]:
    """The settings that let the key named `caller` (a keyless dispatcher's: `local`) place calls through
    `carrier` as `numbers`: without them every such call is refused (voicefleet_settings/call_policy.py)."""
    prefix = carrier.upper()
    return {f"{prefix}_CALLERS": caller, f"{prefix}_CALLER_IDS": ",".join(numbers)}


def twilio_placing(api_url: str, numbers: tuple[str, ...] = ("+14155550199",)) -> dict[str, str]:
    """A dispatcher's settings that place calls as `numbers` through the Twilio fake at `api_url`, paced well
    above the tests' rate, its callbacks addressed to `PUBLIC`."""
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": api_url,
            "PHONE_PUBLIC_URL": PUBLIC, "TWILIO_CALLS_PER_SECOND": "50", **calls_allowed("twilio", numbers)}
