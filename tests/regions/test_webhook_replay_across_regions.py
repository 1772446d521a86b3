"""One captured carrier webhook opens one call in the whole deployment, not one per region: Twilio's
behind a front door (every region's PHONE_PUBLIC_URL the same, so its signed URL is too), Telnyx's
(signed over its timestamp and body only) and Twilio's sent to another region under the first's
Host. Two real regional dispatchers (`python -m dispatcher`), each with its own store of records:
the signature's digest is recorded at its home region too (dispatcher/regions/sightings.py)."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dispatcher.phone.signatures import twilio_signature
from tests.regions.support import regions
from tests.regions.test_phone_across_regions import FORM, TELNYX, TELNYX_PUBLIC, TWILIO_TOKEN
from tests.support.processes import DispatcherProcess

FRONT_DOOR = "https://voice.example.com"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, DispatcherProcess]]]:
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TELNYX_PUBLIC_KEY": TELNYX_PUBLIC, "PHONE_PUBLIC_URL": FRONT_DOOR}
    with regions(tmp_path_factory.mktemp("webhook-replay"), ("eu", "us"), {"eu": common, "us": common}) as running:
        # No wait for the regions to have read each other: a webhook right after start-up counts too.
        yield running


def call() -> dict[str, str]:
    return {"CallSid": "CA" + secrets.token_hex(16), "From": "+14155550100", "To": "+14155550199"}


@pytest.mark.parametrize("order", [("eu", "us", "eu"), ("us", "eu", "us")])
def test_a_captured_twilio_webhook_behind_a_front_door_opens_one_call(
        pair: tuple[dict[str, str], dict[str, DispatcherProcess]], order: tuple[str, ...]) -> None:
    urls, _ = pair
    for _ in range(3):  # each signature's home is one region or the other
        form = call()
        signature = twilio_signature(TWILIO_TOKEN, f"{FRONT_DOOR}/phone/twilio", form.items())
        codes = [httpx.post(f"{urls[name]}/phone/twilio", content=urlencode(form),
                            headers={**FORM, "X-Twilio-Signature": signature}, timeout=10).status_code
                 for name in order]
        assert codes == [200, 403, 403], codes


def test_a_captured_telnyx_webhook_opens_one_call(pair: tuple[dict[str, str], dict[str, DispatcherProcess]]) -> None:
    urls, _ = pair
    for _ in range(3):
        body, sent = urlencode({"CallSid": f"v3:{secrets.token_hex(8)}", "From": "+14155550100"}).encode(), \
            str(int(time.time()))
        headers = {**FORM, "telnyx-timestamp": sent,
                   "telnyx-signature-ed25519": base64.b64encode(TELNYX.sign(sent.encode() + b"|" + body)).decode()}
        codes = [httpx.post(f"{urls[name]}/phone/telnyx", content=body, headers=headers, timeout=10).status_code
                 for name in ("eu", "us", "eu")]
        assert codes == [200, 403, 403], codes


def test_without_phone_public_url_a_webhook_sent_to_another_region_under_the_first_ones_host_is_refused(
        tmp_path: Path) -> None:
    extra = {name: {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN} for name in ("eu", "us")}
    with regions(tmp_path, ("eu", "us"), extra) as (urls, _):
        for _ in range(3):
            form = call()
            headers = {**FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, f"{urls['eu']}/phone/twilio",
                                                                      form.items())}
            first = httpx.post(f"{urls['eu']}/phone/twilio", content=urlencode(form), headers=headers, timeout=10)
            at_us = httpx.post(f"{urls['us']}/phone/twilio", content=urlencode(form),
                               headers={**headers, "Host": urls["eu"].split("://", 1)[1]}, timeout=10)
            assert (first.status_code, at_us.status_code) == (200, 403), at_us.text
