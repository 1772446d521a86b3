"""Attacks on the ECS presign's bounds (dispatcher/machines/ecs/identity.py) by a thief who holds a
session's launch credential: an `X-Amz-Expires` too long for Python's `int()` (over 4300 digits,
which fits in a hello's identity) must be refused like any other bad presign, never raise out of
the hello's check (a traceback in the dispatcher's log for each dial). Against a real dispatcher
on loopback, the ECS fake (moto) and the fake STS that verifies SigV4."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.ecs import EcsProxy
from tests.fakes.fixtures import fake_ecs, moto_ecs  # noqa: F401 (fixtures)
from tests.security.conftest import dial
from tests.security.test_machine_identity import (  # noqa: F401 (fixture)
    Deployment,
    _with,
    ecs_deployment,
    hello,
    takes_its_session,
)


@pytest.mark.parametrize("expires", ["1" * 4301, "0" * 4299 + "60"])
async def test_an_expiry_too_long_for_int_is_refused_without_an_error(
    ecs_deployment: Deployment, fake_ecs: EcsProxy, caplog: pytest.LogCaptureFixture, expires: str,  # noqa: F811
) -> None:
    deployment = ecs_deployment
    session_id = await deployment.start()
    stolen = deployment.provider.launch_credential(session_id)
    genuine = await deployment.provider.own_token(session_id)
    assert genuine is not None
    odd = _with(genuine, **{"X-Amz-Expires": expires})
    sts_calls = len(fake_ecs.sts.calls)
    with caplog.at_level(logging.WARNING):
        assert await dial(deployment.channel_url, stolen, hello(session_id, odd)) is None
    assert len(fake_ecs.sts.calls) == sts_calls, "an expiry no presign holds was sent to STS"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, f"the hello's check raised: {errors[0].getMessage()}"
    assert any("X-Amz-Expires" in r.getMessage() for r in caplog.records), "refused without saying why"
    # Positive control: the real bot, with its own presign, still takes its session.
    assert "body" in await takes_its_session(deployment, session_id)
