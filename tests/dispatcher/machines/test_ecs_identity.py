"""How the dispatcher talks to STS for a bot's task identity (dispatcher/machines/ecs/identity.py):
never where an answer points it, never more than a bounded answer, a few tries when STS falters."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dispatcher.channel.id_tokens import IdentityRefused
from dispatcher.machines.ecs.identity import MAX_ANSWER_BYTES, EcsTaskIdentity
from tests.fakes.server import FakeApi, serve

ANSWER = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
          "<Arn>arn:aws:sts::123456789012:assumed-role/bot-task/abc</Arn><Account>123456789012</Account>"
          "</GetCallerIdentityResult></GetCallerIdentityResponse>")


class Scripted(FakeApi):
    """An STS look-alike that answers each GET with the next scripted response."""

    def __init__(self, *answers: Response) -> None:
        super().__init__()
        self.answers = list(answers)

    def routes(self) -> list[Route]:
        return [Route("/", self.get, methods=["GET"]), Route("/elsewhere", self.get, methods=["GET"])]

    async def get(self, request: Request) -> Response:
        return self.answers.pop(0)


def identity(endpoint: str) -> EcsTaskIdentity:
    async def describe(ids: list[str], account: str) -> list[dict[str, Any]]:
        return []

    return EcsTaskIdentity(region="eu-west-1", cluster="c", endpoint=endpoint, roles=(), describe=describe,
                           container="bot", reserve_marker="vf-reserve", audience="wss://dispatcher.example/bots")


async def test_a_redirect_is_never_followed() -> None:
    with serve(Scripted(RedirectResponse("/elsewhere", status_code=302), Response(ANSWER))) as sts:
        checker = identity(sts.url)
        with pytest.raises(IdentityRefused, match="HTTP 302"):
            await checker.caller_arn("Action=GetCallerIdentity")
        await checker.aclose()
    assert [c.path for c in sts.calls] == ["/"]


async def test_an_answer_over_the_bound_is_refused() -> None:
    with serve(Scripted(Response("<a>" + "x" * MAX_ANSWER_BYTES + "</a>"))) as sts:
        checker = identity(sts.url)
        with pytest.raises(IdentityRefused, match="exceeds"):
            await checker.caller_arn("Action=GetCallerIdentity")
        await checker.aclose()


async def test_sts_faltering_is_tried_again_a_bounded_number_of_times() -> None:
    with serve(Scripted(Response("busy", status_code=503), Response(ANSWER))) as sts:
        checker = identity(sts.url)
        arn = await checker.caller_arn("Action=GetCallerIdentity")
        assert arn == "arn:aws:sts::123456789012:assumed-role/bot-task/abc"
        await checker.aclose()
    with serve(Scripted(*[Response("busy", status_code=503)] * 5)) as sts:
        checker = identity(sts.url)
        with pytest.raises(IdentityRefused, match="STS did not answer"):
            await checker.caller_arn("Action=GetCallerIdentity")
        await checker.aclose()
    assert len(sts.calls) == 3
