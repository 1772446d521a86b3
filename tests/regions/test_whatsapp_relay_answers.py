"""What a region relaying Meta's `terminate` believes of its peer's answer (dispatcher/whatsapp/elsewhere.py):
a region's answer is signed and takes the event at the first try; a `200` nobody signed (whoever answers at
the peer's URL without the regions' secret) is no region's, so the event is sent again and its loss logged;
a `401` (the peer did not believe the signature: another REGION_SECRET, a clock far off) is warned of at
once, naming the fix, and not sent again (a new signature would be refused alike).

Region `us` is played by the relay alone; `eu` is an in-process dispatcher served on a loopback port, Meta
its strict fake, or an impostor HTTP server at eu's URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from types import MappingProxyType

import pytest

import dispatcher.whatsapp.elsewhere as elsewhere
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.whatsapp.elsewhere import ATTEMPTS, RegionsElsewhere
from dispatcher.whatsapp.events import CallEvent, call_events
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_faults import sent, standin_answers
from tests.phone.test_whatsapp_webhook import OFFER, dispatcher
from tests.support.ports import free_port
from tests.support.threaded_http import send, serving

__all__ = ["standin_answers"]
SECRET = "whatsapp-relay-answers-region-secret-0123"


def us_relaying_to(eu_url: str) -> RegionsElsewhere:
    """Region us's relay, with eu reachable at `eu_url` (as its polling found it)."""
    regions = Regions("us", MappingProxyType({"eu": eu_url, "us": f"http://127.0.0.1:{free_port()}"}),
                      SECRET.encode())
    peers = Peers(regions)
    peers.by_name["eu"].reachable = True
    return RegionsElsewhere(peers)


def event_of(webhook: tuple[bytes, dict[str, str]]) -> CallEvent:
    return call_events(json.loads(webhook[0]))[0]


def relay_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "dispatcher.whatsapp" and r.levelno >= logging.WARNING and "region eu" in r.getMessage()]


async def test_a_region_s_signed_answer_takes_the_relayed_terminate_at_the_first_try(
        caplog: pytest.LogCaptureFixture) -> None:
    regions = {"REGION": "eu", "REGIONS": f"eu=http://127.0.0.1:{free_port()},us=http://127.0.0.1:{free_port()}",
               "REGION_SECRET": SECRET}
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake, PHONE_NUMBER_ID, regions) as eu:
            calls = eu.dispatcher.state.whatsapp
            assert calls is not None and eu.dispatcher.port is not None
            call = fake.ring(OFFER)
            body, headers = fake.connect_webhook(call)
            assert (await eu.dispatcher.client.post("/phone/whatsapp", content=body, headers=headers)).is_success
            await calls.settled()
            assert call.state == "accepted"
            us = us_relaying_to(f"http://127.0.0.1:{eu.dispatcher.port}")
            try:
                with caplog.at_level(logging.INFO, logger="dispatcher.whatsapp"):
                    await us.send(event_of(fake.terminate_webhook(call)))  # the caller hung up; Meta told us
                    await calls.settled()
            finally:
                await us.aclose()
            session = (await eu.dispatcher.client.get(f"/sessions/{eu.launches[0]}")).json()
            assert session["status"] in ("stopping", "ended"), session
            assert relay_warnings(caplog) == []
            assert not [r for r in caplog.records if "did not take" in r.getMessage()]
            assert sent(eu) == ["pre_accept", "accept"]  # Meta ended it: nothing hung up


class Impostor:
    """What answers at eu's URL, holding no REGION_SECRET: `status` and a body, never signed."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.posts = 0


@contextmanager
def impostor(status: int) -> Iterator[tuple[str, Impostor]]:
    answers = Impostor(status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answers.posts += 1
            body = {"events": 1, "taken": 1} if answers.status == 200 else {
                "error": {"code": "region_unauthenticated", "message": "the signature does not match"}}
            send(self, answers.status, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, answers


@pytest.mark.parametrize("status", [200, 401])
async def test_an_answer_no_region_signed_is_not_believed_and_a_refused_signature_is_warned_of(
        status: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(elsewhere, "FIRST_WAIT_SECONDS", 0.01)  # the backoff is not what this tests
    with serve(FakeWhatsApp()) as fake, impostor(status) as (url, answers):
        us = us_relaying_to(url)
        try:
            with caplog.at_level(logging.INFO, logger="dispatcher.whatsapp"):
                await us.send(event_of(fake.terminate_webhook(fake.ring(OFFER))))
        finally:
            await us.aclose()
    warned = relay_warnings(caplog)
    if status == 200:  # asked again, and its loss logged
        assert answers.posts == ATTEMPTS
        assert len(warned) == 1 and "without a region's signature" in warned[0], warned
    else:  # asked once: a new signature is refused alike
        assert answers.posts == 1
        assert len(warned) == 1 and "REGION_SECRET" in warned[0], warned
