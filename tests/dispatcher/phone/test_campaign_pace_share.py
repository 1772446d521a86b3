"""Two keys' campaigns at once share the Twilio account's pace (docs/phone.md#sharing-a-pace): one key runs
three campaigns, each at the account's whole pace, the other one; once the second key's first call went
out, each key places about half the calls that follow. Counted on the strict Twilio fake's creates, never
timed: first come first served, the three campaigns' rows took three turns in four."""

from __future__ import annotations

from dispatcher.settings import Settings
from tests.dispatcher.phone.test_campaigns import FROM, campaign, created, running, until
from tests.fakes.twilio_outbound import FakeTwilioCalls

KEYS = {"team-a": "vf-team-a-pace-share-0a1b2c3d4e5f", "team-b": "vf-team-b-pace-share-6a7b8c9d0e1f"}
PER_SECOND = 10  # the account's calls a second, every campaign's pace too
ROWS = 40  # each campaign's: more than the test counts, so no campaign runs out
COUNTED = 24  # the creates counted once both keys are placing


def numbers(team: int, campaign_no: int) -> list[str]:
    return [f"+1415{team}{campaign_no}{n:05d}" for n in range(ROWS)]


def whose(call_to: str) -> str:
    return "team-a" if call_to.startswith("+14151") else "team-b"


async def test_two_keys_campaigns_at_once_each_get_about_half_the_accounts_pace(twilio: FakeTwilioCalls) -> None:
    keys = Settings.from_env({"DISPATCHER_API_KEYS": ",".join(f"{name}:{key}" for name, key in KEYS.items())})
    async with running(twilio, settings=keys, TWILIO_CALLERS="team-a,team-b",
                       TWILIO_CALLS_PER_SECOND=str(PER_SECOND), TWILIO_CALL_MAX_WAIT_SECONDS="30") as api:
        as_a = {"Authorization": f"Bearer {KEYS['team-a']}"}
        as_b = {"Authorization": f"Bearer {KEYS['team-b']}"}
        for n in range(3):
            api.headers.update(as_a)
            await created(api, campaign(numbers(1, n), concurrency=ROWS, pace=PER_SECOND))
        api.headers.update(as_b)
        await created(api, campaign(numbers(2, 0), concurrency=ROWS, pace=PER_SECOND))

        def after_b_began() -> list[str]:
            placed = [whose(str(call.one("To"))) for call in twilio.placed]
            began = placed.index("team-b") if "team-b" in placed else len(placed)
            return placed[began + 1:]

        counted = (await until(f"{COUNTED} creates after team-b's first", lambda: len(after_b_began()) >= COUNTED
                               and after_b_began()))[:COUNTED]
    assert all(call.one("From") == FROM for call in twilio.placed)
    shares = {team: counted.count(team) for team in KEYS}
    assert min(shares.values()) >= COUNTED // 2 - 1, shares

