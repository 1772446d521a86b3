"""A carrier's webhook answered behind a shared front door (PHONE_PUBLIC_URL the same in every
region) names the answering region's own URL as its stream: the front door could send the stream
to another region, whose check refuses the token, and the caller would hear nothing."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from dispatcher.phone.signatures import twilio_signature
from tests.regions.support import regions
from tests.regions.test_phone_across_regions import FORM, TWILIO_TOKEN, refused, stream_url, ws_base

FRONT = "https://voice.example.com"


@pytest.mark.asyncio
async def test_a_webhook_answered_behind_a_shared_front_door_streams_to_its_own_region(tmp_path: Path) -> None:
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PHONE_PUBLIC_URL": FRONT}
    with regions(tmp_path, ("eu", "us"), {"eu": common, "us": common}) as (urls, _):
        call = {"CallSid": "CA" + secrets.token_hex(16), "From": "+14155550100", "To": "+14155550199"}
        signature = twilio_signature(TWILIO_TOKEN, f"{FRONT}/phone/twilio", call.items())
        answer = httpx.post(f"{urls['eu']}/phone/twilio", content=urlencode(call),
                            headers={**FORM, "X-Twilio-Signature": signature}, timeout=10)
        stream = stream_url(answer)
        path = urlsplit(stream).path
        # Where the front door sends the stream is its choice: at us, eu's token opens nothing.
        at_us = await refused(ws_base(urls["us"]) + path)
        assert stream.startswith(ws_base(urls["eu"])), (stream, at_us)
