"""Replaying a machine's identity token (Compute Engine's instance identity token, valid an hour;
Fly's Machine OIDC token, ten minutes): a thief with the session's launch credential and one
token the real bot sent (from a log, a proxy, a debugging dump) dials while the token is still
valid, after the real bot was admitted with it. A token is admitted once, at any replica: the
replay is refused and the real bot's channel stays open. Against a real dispatcher on loopback and
the providers' fakes, which sign their tokens as the providers do."""

from __future__ import annotations

import asyncio

from websockets.exceptions import ConnectionClosed

from tests.security.conftest import WAIT, dial
from tests.security.test_ecs_identity_replay import serving_bot
from tests.security.test_machine_identity import Deployment, hello, jwt_deployment  # noqa: F401 (fixture)


async def test_a_captured_identity_token_is_not_admitted_a_second_time(
    jwt_deployment: Deployment,  # noqa: F811 (the fixture)
) -> None:
    deployment = jwt_deployment
    session_id, credential, token, real = await serving_bot(deployment)
    thief = await dial(deployment.channel_url, credential, hello(session_id, token, machine_id=f"m-{session_id}"))
    try:
        assert thief is None, "a replayed identity token was admitted: the thief now holds the session's channel"
        try:
            await asyncio.wait_for(await real.ping(), WAIT)
        except ConnectionClosed:
            raise AssertionError("the replay closed the real bot's channel") from None
        # The real bot re-dialling fetches a fresh token (bot/channel_session.py): that one is admitted.
        fresh = await deployment.provider.own_token(session_id)
        assert fresh != token
        again = await dial(deployment.channel_url, credential, hello(session_id, fresh, machine_id=f"m-{session_id}"))
        assert again is not None, "the bot's re-dial with a fresh token was refused"
        await again.close()
    finally:
        if thief is not None:
            await thief.close()
        await real.close()
