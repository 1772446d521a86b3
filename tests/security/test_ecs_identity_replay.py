"""Attacks on the ECS task identity (dispatcher/machines/ecs/identity.py) by a thief who holds a
session's launch credential (readable by anyone with `ecs:DescribeTasks` on the task's overrides)
and one presigned `sts:GetCallerIdentity` the task's bot sent (captured from a log, a proxy or a
debugging dump): the presign is a bearer token for as long as STS honours it (up to the
`X-Amz-Expires` the dispatcher accepts), bound neither to this dispatcher nor to one use.
Against a real dispatcher on loopback, the ECS fake (moto) and the fake STS that verifies SigV4."""

from __future__ import annotations

import asyncio
import base64

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from botchannel.contract import Reply, encode
from tests.fakes.ecs import EcsProxy
from tests.fakes.fixtures import fake_ecs, moto_ecs  # noqa: F401 (fixtures)
from tests.security.conftest import WAIT, dial
from tests.security.test_machine_identity import Deployment, ecs_deployment, hello  # noqa: F401 (fixture)
from tests.support.cold_bot import next_assign


async def serving_bot(deployment: Deployment) -> tuple[str, str, str | None, ClientConnection]:
    """A session whose real bot was admitted with its identity proof (an ECS presign, a GCE or Fly
    token) and took its values: (session id, the launch credential, that proof, the bot's open channel)."""
    session_id = await deployment.start()
    credential = deployment.provider.launch_credential(session_id)
    presign = await deployment.provider.own_token(session_id)
    real = await dial(deployment.channel_url, credential, hello(session_id, presign, machine_id=f"m-{session_id}"))
    assert real is not None, "the real bot was refused (positive control)"
    assign = await next_assign(real)
    await real.send(encode(Reply(assign.id, result={"session_id": session_id, "machine_id": f"m-{session_id}"})))
    return session_id, credential, presign, real


async def test_a_captured_presigned_identity_is_not_admitted_a_second_time(
    ecs_deployment: Deployment, fake_ecs: EcsProxy,  # noqa: F811 (the fixtures)
) -> None:
    """The real bot is admitted with its presign and serves its session; the thief replays that very
    presign (with the stolen launch credential and the bot's id, both shown by DescribeTasks and the
    hello) while it is still valid. A bot re-dialling presigns afresh (bot/channel_session.py), so a
    presign seen once must open nothing again: here the thief is welcomed and the real bot's
    channel is closed (the newest link of a session replaces the old one)."""
    session_id, credential, presign, real = await serving_bot(ecs_deployment)
    sts_calls = len(fake_ecs.sts.calls)
    thief = await dial(ecs_deployment.channel_url, credential, hello(session_id, presign, machine_id=f"m-{session_id}"))
    try:
        assert thief is None, "a replayed presign was admitted: the thief now holds the session's channel"
        assert len(fake_ecs.sts.calls) == sts_calls, "a presign already used was sent to STS again"
    finally:
        if thief is not None:
            await thief.close()
        await real.close()


async def test_a_replay_that_displaces_the_real_bot_closes_its_channel(
    ecs_deployment: Deployment,  # noqa: F811 (the fixture)
) -> None:
    """What the replay costs: the real bot's channel is closed by the thief's admission (it then
    re-dials with a fresh presign, and the thief with the same captured one, for as long as it
    lives), so the session's signalling and reports go to whoever dialled last."""
    session_id, credential, presign, real = await serving_bot(ecs_deployment)
    thief = await dial(ecs_deployment.channel_url, credential, hello(session_id, presign, machine_id=f"m-{session_id}"))
    try:
        # The thief's welcome comes after the dispatcher replaced (and closed) the session's old link.
        try:
            await asyncio.wait_for(await real.ping(), WAIT)
        except ConnectionClosed:
            raise AssertionError("the thief's replay closed the real bot's channel") from None
    finally:
        if thief is not None:
            await thief.close()
        await real.close()


async def test_a_query_with_characters_a_presign_never_holds_is_refused_before_sts(
    ecs_deployment: Deployment, fake_ecs: EcsProxy,  # noqa: F811 (the fixtures)
) -> None:
    """A SigV4 presign percent-encodes everything but `A-Za-z0-9-_.~` in its query. The check lets
    any printable character through and the request goes out byte for byte, so a raw space splits
    the request line STS receives (`GET /?…=abc HTTP/1.0 HTTP/1.1`): only STS's host is reached, but
    the dispatcher sends a request it did not check the shape of. Refuse it before any call."""
    deployment = ecs_deployment
    session_id = await deployment.start()
    stolen = deployment.provider.launch_credential(session_id)
    genuine = await deployment.provider.own_token(session_id)
    assert genuine is not None
    url = base64.urlsafe_b64decode(genuine + "=" * (-len(genuine) % 4)).decode()
    sts_calls = len(fake_ecs.sts.calls)
    for odd in (" HTTP/1.0", "\\x", "\"x", "<x>"):
        tampered = base64.urlsafe_b64encode((url + odd).encode()).decode().rstrip("=")
        assert await dial(deployment.channel_url, stolen, hello(session_id, tampered)) is None, odd
    assert len(fake_ecs.sts.calls) == sts_calls, "a query no presign could hold was sent to STS"
