"""Replaying a machine's identity token spelt otherwise: the one-use record must name the token by
what every accepted spelling of it shares. A JWT's signature segment is base64url, and its decoder
drops the unused low bits of the last character: a thief with the session's launch credential and
one token the real bot sent re-spells it so its text differs, and presents it while still valid. Against a real
dispatcher on loopback and the providers' fakes (which sign their tokens as the providers do)."""

from __future__ import annotations

import base64

import pytest

from tests.security.conftest import dial
from tests.security.test_ecs_identity_replay import serving_bot
from tests.security.test_machine_identity import Deployment, hello, jwt_deployment  # noqa: F401 (fixture)

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _last_bits_flipped(signature: str) -> str:
    """The same signature bytes with another last character: a 256-byte RSA signature is 342
    base64url characters, whose last carries 4 bits the decoder drops."""
    unused = (6 - len(base64.urlsafe_b64decode(signature + "==")) * 8 % 6) % 6
    last = _B64URL.index(signature[-1])
    return signature[:-1] + _B64URL[last ^ ((1 << unused) - 1)]


SPELLINGS = {"unused bits": _last_bits_flipped}  # padding and `+`/`/` the verifier refuses (checked)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
async def test_a_captured_identity_token_respelt_is_not_admitted_a_second_time(
    jwt_deployment: Deployment, spelling: str,  # noqa: F811 (the fixture)
) -> None:
    deployment = jwt_deployment
    session_id, credential, token, real = await serving_bot(deployment)
    assert token is not None
    header, payload, signature = token.split(".")
    respelt = f"{header}.{payload}.{SPELLINGS[spelling](signature)}"
    assert respelt != token
    thief = await dial(deployment.channel_url, credential, hello(session_id, respelt, machine_id=f"m-{session_id}"))
    try:
        assert thief is None, f"the captured token spelt otherwise ({spelling}) was admitted a second time"
    finally:
        if thief is not None:
            await thief.close()
        await real.close()


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
async def test_a_respelt_token_never_presented_before_is_admitted(
    jwt_deployment: Deployment, spelling: str,  # noqa: F811 (the fixture)
) -> None:
    """Positive control: the spelling alone is accepted by the verifier (so the attack above is
    refused for being a replay, not for its spelling)."""
    deployment = jwt_deployment
    session_id = await deployment.start()
    credential = deployment.provider.launch_credential(session_id)
    token = await deployment.provider.own_token(session_id)
    assert token is not None
    header, payload, signature = token.split(".")
    respelt = f"{header}.{payload}.{SPELLINGS[spelling](signature)}"
    ws = await dial(deployment.channel_url, credential, hello(session_id, respelt, machine_id=f"m-{session_id}"))
    assert ws is not None, f"a first token spelt otherwise ({spelling}) was refused"
    await ws.close()
