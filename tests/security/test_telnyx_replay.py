"""One captured Telnyx webhook is one call token, however its signature is spelled.

base64 leaves the last symbol of a 64-byte signature 4 unused bits, and a lenient decoder ignores
them: 16 texts decode to the same signature. The replay record is keyed on the header, so each
spelling would pass as a first sighting and mint its own call token within the 300 s tolerance.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from tests.dispatcher.api.test_webhooks import stream_token, telnyx_headers
from tests.support.phone_dispatcher import Phone, phone_dispatcher

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def spellings(signature: str) -> list[str]:
    """Every other text of the same bytes: the last symbol before the padding with its unused bits changed."""
    head, last, pad = signature[:-3], signature[-3], signature[-2:]
    assert pad == "==", "a 64-byte signature ends in one symbol with 4 unused bits and `==`"
    used = ALPHABET.index(last) & 0b110000
    variants = [head + ALPHABET[used | low] + pad for low in range(16)]
    assert all(base64.b64decode(v) == base64.b64decode(signature) for v in variants)
    return [v for v in variants if v != signature]


@pytest.fixture
async def keyed() -> AsyncIterator[Phone]:
    """A dispatcher with API keys and Telnyx's public key: every webhook must prove itself."""
    async for phone in phone_dispatcher(keyed=True):
        yield phone


async def test_sixteen_spellings_of_one_captured_telnyx_signature_mint_one_call_token(keyed: Phone) -> None:
    body = urlencode({"CallSid": "v3:captured", "From": "+14155550100"}).encode()
    captured = telnyx_headers(keyed, body, int(time.time()))
    genuine = await keyed.api.post("/phone/telnyx", content=body, headers=captured)
    assert genuine.status_code == 200, genuine.text  # control: the carrier's own request gets its token
    keyed.app.state.voicefleet.phone.tokens.check(stream_token(genuine.text, "telnyx"), "telnyx")

    signature = captured["telnyx-signature-ed25519"]
    minted = []
    for spelling in spellings(signature):
        replay = await keyed.api.post(
            "/phone/telnyx", content=body, headers={**captured, "telnyx-signature-ed25519": spelling}
        )
        if replay.status_code == 200:
            minted.append(spelling)
        else:
            assert replay.status_code == 403 and "wss://" not in replay.text
    assert minted == [], f"{len(minted)} more call tokens from one captured webhook"
    again = await keyed.api.post("/phone/telnyx", content=body, headers=captured)
    assert again.status_code == 403 and again.json()["error"]["code"] == "replayed"
