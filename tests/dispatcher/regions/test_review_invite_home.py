"""Hostile review of the trunk INVITE bucket's home region (`POST /regions/pace`, kind `trunk-invites`, with a
`record`): what the home grants, and what the asking region makes of it. A carrier counting the trunk's cps
answers over it with Twilio 32001 (https://www.twilio.com/docs/api/errors/32001), or suspends the trunk."""

from __future__ import annotations

from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response

from dispatcher.phone.invite_spacing import NOT_YET, InviteSpacing
from dispatcher.regions.config import Regions
from dispatcher.regions.pace_homes import INVITES, PASS_OVER_FAILURES, RegionPaces, pace_home
from dispatcher.regions.peers import Peers
from dispatcher.store.local import LocalCoordination
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.regions.test_pace_homes import SECRET, home_answering, paces_at, signed

MAX_WAIT = 5.0  # the hand-over's longest wait (TrunkCallSettings.max_wait_seconds' default)
CPS = 1.0


def invites_homed_at_eu(urls: dict[str, str]) -> str:
    return next(b for n in range(100) if pace_home(urls, b := f"{INVITES}:far{n}") == "eu")


async def test_the_home_grants_no_invite_turn_past_the_asker_s_longest_wait() -> None:
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}
    eu = paces_at("eu", urls)
    bucket = invites_homed_at_eu(urls)
    answers = [await eu.offered("us", {"bucket": bucket, "per_second": CPS, "max_wait": MAX_WAIT,
                                       "record": f"invite-due:vf_{n}"}) for n in range(12)]
    past = [a["wait"] for a in answers if a["granted"] and a["wait"] > MAX_WAIT]
    assert past == [], past


async def test_a_home_that_answers_with_a_far_invite_turn_is_not_passed_over() -> None:
    async def busy(request: Request) -> Response:  # what the home above answers once its bucket is 30 s out
        return signed(request, {"granted": True, "wait": 30.0})  # signed: the home's own answer

    with home_answering(busy) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:2"}
        bucket = invites_homed_at_eu(urls)
        us = RegionPaces(Peers(Regions("us", MappingProxyType(urls), SECRET.encode())), LocalCoordination())
        us._peers.by_name["eu"].reachable = True  # as its polls find it
        try:
            for n in range(PASS_OVER_FAILURES):
                await us.turn(bucket, CPS, MAX_WAIT, record=f"invite-due:vf_{n}")
        finally:
            await us.aclose()
    assert len(asked) == PASS_OVER_FAILURES
    assert us.alone() == []  # the home answered every ask: this region does not pace alone from it


async def test_an_unsigned_400_at_the_home_s_url_does_not_turn_off_the_home_s_spacing() -> None:
    async def proxy(_request: Request) -> Response:  # no region's signature: not the home's answer
        return Response("<html><body>400 Bad Request</body></html>", status_code=400, media_type="text/html")

    with home_answering(proxy) as (url, asked):
        urls = {"eu": url, "us": "http://127.0.0.1:2"}
        trunk = invites_homed_at_eu(urls).partition(":")[2]
        us = RegionPaces(Peers(Regions("us", MappingProxyType(urls), SECRET.encode())), LocalCoordination())
        us._peers.by_name["eu"].reachable = True
        spacing = InviteSpacing(us, LocalFirstClaims(), max_wait=MAX_WAIT)

        async def cps(_: str) -> float:
            return CPS

        try:
            await spacing.handed("vf_a", trunk)
            told = await spacing.wait("vf_a", cps)
        finally:
            await us.aclose()
    assert asked
    assert told == NOT_YET  # not `joined` on a turn no home gave (0.0: this region's own store, the whole cps)
