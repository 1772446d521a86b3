"""The bot's media socket when the call ends while the bot is dialling in."""

from __future__ import annotations

import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dispatcher.phone.media_links import MediaLink, MediaLinks
from tests.support.phone_dispatcher import Phone

SESSION = "media-race-session"


async def test_a_call_that_ends_during_the_bots_handshake_closes_its_socket_cleanly(
    keyless: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    links: MediaLinks = keyless.app.state.voicefleet.phone.calls.links
    _, secret = links.expect(SESSION)
    claim = links.claim

    def claimed_then_call_ended(session_id: str, authorization: str | None) -> MediaLink | None:
        link = claim(session_id, authorization)
        assert link is not None
        links.forget(link)  # the carrier hangs up between the claim and the handshake's end
        return link

    links.claim = claimed_then_call_ended  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        async with connect(
            keyless.ws(f"/bots/media/{SESSION}"),
            proxy=None,
            open_timeout=30,
            additional_headers={"Authorization": f"Bearer {secret}"},
        ) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000  # not 1011: no error in the route
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
