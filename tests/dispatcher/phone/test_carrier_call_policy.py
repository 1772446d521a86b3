"""Who may place calls through Twilio or Telnyx, to which numbers, as which caller id: the SIP trunk's policy
(voicefleet_settings/call_policy.py) from `TWILIO_CALLERS`/`TELNYX_CALLERS`, `…_DESTINATIONS` and
`…_CALLER_IDS`. The account pays for every call: a key not named, a premium-rate or satellite number, or
another team's number as `from` is refused 403 before anything reaches the carrier. The dispatcher
in-process, each carrier a strict fake on a real port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.fakes.twilio import AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls

PUBLIC = "https://calls.example.com"
ALICE, MALLORY = "vf_alice_key_0123456789abcdef0123", "vf_mallory_key_0123456789abcdef01"
KEYS = f"alice:{ALICE},mallory:{MALLORY}"
OURS, THEIRS = "+14155550199", "+14155550777"  # both the account's: the second another team's
FAKES = {"twilio": FakeTwilioCalls, "telnyx": FakeTelnyxCalls}
# premium rate (+1900, +1976), satellite (+882, +881), international premium (+979), emergency (+911)
RISKY = ["+19005550123", "+19765550123", "+88216012345", "+88112345678", "+97912345678", "+911"]


@pytest.fixture(params=sorted(FAKES))
def carrier(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeTwilioCalls]]:
    with serve(FAKES[request.param](create_per_second=50, numbers=(OURS, THEIRS))) as fake:
        yield request.param, fake


async def calls(carrier: tuple[str, FakeTwilioCalls], asked: list[tuple[str, str, str]],
                **policy: str) -> list[httpx.Response]:
    """Each (key, to, from) asked of `POST /calls` through the carrier, with the policy's settings (by their
    names after the carrier's prefix: `CALLERS="alice"`)."""
    name, fake = carrier
    prefix = name.upper()
    env = {**fake.env(), "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PHONE_PUBLIC_URL": PUBLIC, "DISPATCHER_API_KEYS": KEYS,
           f"{prefix}_CALLS_PER_SECOND": "50", **{f"{prefix}_{setting}": value for setting, value in policy.items()}}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    fake.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        for key, to, caller_id in asked:
            answers.append(await client.post("/calls", json={"to": to, "from": caller_id, "carrier": name},
                                             headers={"Authorization": f"Bearer {key}"}))
    await app.state.voicefleet.aclose()
    return answers


def refused(answer: httpx.Response, *words: str) -> bool:
    message = answer.json()["error"]["message"] if answer.status_code == 403 else ""
    return answer.json().get("error", {}).get("code") == "call_not_allowed" and all(w in message for w in words)


async def test_no_key_places_calls_through_a_carrier_until_its_callers_name_it(
        carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    unset = await calls(carrier, [(ALICE, "+14155550100", OURS)], CALLER_IDS=OURS)
    assert refused(unset[0], f"{name.upper()}_CALLERS", "(now: none)", "docs/phone.md#who-may-call-out"), unset[0].text
    named = await calls(carrier, [(MALLORY, "+14155550100", OURS), (ALICE, "+14155550100", OURS)],
                        CALLERS="alice", CALLER_IDS=OURS)
    assert refused(named[0], "'mallory'", "(now: alice)"), named[0].text
    assert named[1].status_code == 201, named[1].text
    assert len(fake.placed) == 1  # alice's alone reached the carrier


async def test_premium_satellite_and_emergency_numbers_are_refused_unless_a_pattern_names_them(
        carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    anywhere = await calls(carrier, [(ALICE, to, OURS) for to in RISKY], CALLERS="alice", CALLER_IDS=OURS)
    assert all(refused(answer, f"{name.upper()}_DESTINATIONS") for answer in anywhere), [a.text for a in anywhere]
    north_america = await calls(carrier, [(ALICE, "+19005550123", OURS), (ALICE, "+442071234567", OURS)],
                                CALLERS="alice", CALLER_IDS=OURS, DESTINATIONS="+1*")
    assert refused(north_america[0], "+1*") and refused(north_america[1], "+1*"), [a.text for a in north_america]
    assert fake.placed == []
    named = await calls(carrier, [(ALICE, "+19005550123", OURS)], CALLERS="alice", CALLER_IDS=OURS,
                        DESTINATIONS="+1*,+1900*")
    assert named[0].status_code == 201, named[0].text  # a team that means to call it says so


async def test_a_call_shows_only_the_numbers_caller_ids_names(carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    answers = await calls(carrier, [(ALICE, "+14155550100", THEIRS)], CALLERS="alice", CALLER_IDS=OURS)
    assert refused(answers[0], f"{name.upper()}_CALLER_IDS", THEIRS, OURS), answers[0].text
    unset = await calls(carrier, [(ALICE, "+14155550100", OURS)], CALLERS="alice")
    assert refused(unset[0], f"{name.upper()}_CALLER_IDS", "none"), unset[0].text
    assert fake.placed == []


@pytest.mark.parametrize(("setting", "value"), [("DESTINATIONS", "+1*,44*"), ("CALLER_IDS", "4155550199")])
def test_a_policy_setting_not_in_e164_stops_the_dispatcher_naming_it(carrier: tuple[str, FakeTwilioCalls],
                                                                     setting: str, value: str) -> None:
    name, fake = carrier
    env = {**fake.env(), "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PHONE_PUBLIC_URL": PUBLIC,
           **calls_allowed(name), f"{name.upper()}_{setting}": value}
    with pytest.raises(SettingsError, match=f"{name.upper()}_{setting}"):
        create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
