"""`voicefleet calls place` sends an Idempotency-Key each run: a create the carrier queued but never answered
(`504 …_unanswered`, the call may ring yet) is followed by the key, never placed a second time by asking
again with it. A real dispatcher app on a loopback port, Telnyx a strict fake on another."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import pytest
from click.testing import CliRunner, Result

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.support.dispatcher_server import serving
from voicefleet.main import voicefleet

PLACE = ["calls", "place", "+14155550100", "--from", "+14155550199", "--carrier", "telnyx", "--wait", "0"]


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


@pytest.fixture
async def url(telnyx: FakeTelnyxCalls) -> AsyncIterator[str]:
    env = {**telnyx.env(), "PHONE_PUBLIC_URL": "https://calls.example.com", "TELNYX_CALLS_PER_SECOND": "50",
           **calls_allowed("telnyx")}
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with serving(app) as port:
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await app.state.voicefleet.aclose()


async def run(url: str, *args: str) -> Result:
    """The command, in a thread (the dispatcher answers on this loop)."""
    env = {"VOICEFLEET_URL": url, "VOICEFLEET_API_KEY": None, "VOICEFLEET_ADMIN_KEY": None}
    return await asyncio.to_thread(CliRunner().invoke, voicefleet, list(args), env=env, prog_name="voicefleet")


async def test_a_create_never_answered_names_its_session_and_the_key_that_asks_again(
        url: str, telnyx: FakeTelnyxCalls) -> None:
    telnyx.queued_but_answered = 502  # the call is queued; its answer lost at a gateway
    unsure = await run(url, *PLACE)
    assert unsure.exit_code != 0 and "telnyx_unanswered (HTTP 504)" in unsure.output, unsure.output
    session = re.search(r"follow its session (\S+) ", unsure.output)
    key = re.search(r"--idempotency-key (\S+)`", unsure.output)
    assert session is not None and key is not None, unsure.output
    again = await run(url, *PLACE, "--idempotency-key", key.group(1))
    assert again.exit_code == 0 and again.output.split() == [session.group(1)], again.output
    assert len(telnyx.placed) == 1  # the first call's session, not a second call


async def test_each_run_is_a_call_of_its_own(url: str, telnyx: FakeTelnyxCalls) -> None:
    first, second = await run(url, *PLACE), await run(url, *PLACE)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.output != second.output and len(telnyx.placed) == 2  # a fresh key per run
