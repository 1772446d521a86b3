"""Finding: webhook replay records lived in each replica's memory, for 600 s. One captured signed
carrier webhook (Twilio's and Plivo's signatures carry no time) minted a call token at every
replica behind the load balancer, and again at each every ten minutes.

Two replicas (real apps) share a real redis-server with the stack's access rules. A webhook
answered at one is refused at the other, for each carrier that signs its webhooks; a new call's
webhook is still answered at either (the control). The record lasts as long as the signature
would pass. With the store down, a webhook is refused rather than answered on one replica's memory.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dispatcher.app import create_app
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.api.test_webhooks import plivo_headers, twilio_headers
from tests.support.phone_dispatcher import API_KEY, PLIVO_TOKEN, PUBLIC, TWILIO_TOKEN
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_server

DAY = 24 * 3600


@dataclass
class Replicas:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    store: RedisServer
    telnyx: Ed25519PrivateKey

    def telnyx_headers(self, body: bytes, sent: int) -> dict[str, str]:
        signature = base64.b64encode(self.telnyx.sign(str(sent).encode() + b"|" + body)).decode()
        return {"Content-Type": "application/x-www-form-urlencoded", "telnyx-signature-ed25519": signature,
                "telnyx-timestamp": str(sent)}

    def kept_for(self) -> list[int]:
        """The seconds each webhook record in the store has left."""
        admin = self.store.admin()
        try:
            return [int(admin.ttl(key)) for key in admin.scan_iter("*webhook:*")]
        finally:
            admin.close()


def carrier_env(telnyx: Ed25519PrivateKey) -> dict[str, str]:
    public = base64.b64encode(telnyx.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return {"PHONE_PUBLIC_URL": PUBLIC, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
            "TELNYX_PUBLIC_KEY": public, "PHONE_TOKEN_SECRET": "phone-token-secret-shared-" + "p" * 20,
            "RESERVE_MAX_IDLE": "0"}


@contextlib.asynccontextmanager
async def replica(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(api_key_hashes=frozenset({hash_api_key(API_KEY)})), env=env, rooms=None)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC)
    try:
        yield client
    finally:
        await client.aclose()
        await app.state.voicefleet.aclose()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    telnyx = Ed25519PrivateKey.generate()
    with redis_server(tmp_path) as store:
        common = {**carrier_env(telnyx), **store.env}
        async with replica({**common, "REPLICA_ID": "r-a"}) as a, replica({**common, "REPLICA_ID": "r-b"}) as b:
            yield Replicas(a, b, store, telnyx)


async def test_a_webhook_answered_at_one_replica_is_refused_at_the_other(replicas: Replicas) -> None:
    twilio = {"CallSid": "CA" + "c" * 32, "From": "+14155550100", "To": "+14155550199"}
    plivo = {"CallUUID": "plivo-captured", "From": "14155550100", "To": "14155550199"}
    telnyx = urlencode({"CallSid": "v3:captured", "From": "+14155550100"}).encode()
    sent = (
        ("/phone/twilio", urlencode(twilio).encode(), twilio_headers(twilio)),
        ("/phone/plivo", urlencode(plivo).encode(), plivo_headers(plivo, "nonce-captured")),
        ("/phone/telnyx", telnyx, replicas.telnyx_headers(telnyx, int(time.time()))),
    )
    for path, body, headers in sent:
        first = await replicas.a.post(path, content=body, headers=headers)
        assert first.status_code == 200 and "wss://" in first.text, first.text  # the carrier's own request
        replayed = await replicas.b.post(path, content=body, headers=headers)
        assert replayed.status_code == 403, f"{path}: the other replica minted a call token for the same webhook"
        assert replayed.json()["error"]["code"] == "replayed" and "wss://" not in replayed.text

    # Control: another call's webhook is answered at the other replica.
    other = {**twilio, "CallSid": "CA" + "d" * 32}
    answered = await replicas.b.post("/phone/twilio", content=urlencode(other), headers=twilio_headers(other))
    assert answered.status_code == 200, answered.text
    # Kept as long as the signature passes: Twilio's and Plivo's for 25 h, Telnyx's 5 min either side and a minute.
    kept = sorted(replicas.kept_for())
    assert len(kept) == 4 and 600 < kept[0] <= 660 and all(DAY < left <= 25 * 3600 for left in kept[1:]), kept


async def test_with_the_store_down_a_webhook_is_refused_not_answered(tmp_path: Path) -> None:
    down = {**carrier_env(Ed25519PrivateKey.generate()), "REDIS_URL": f"redis://:pw@127.0.0.1:{free_port()}/0",
            "REDIS_MESSAGE_SECRET": "m" * 32, "REDIS_TIMEOUT_SECONDS": "0.5", "REPLICA_ID": "r-a"}
    call = {"CallSid": "CA" + "e" * 32, "From": "+14155550100"}
    async with replica(down) as alone:
        refused = await alone.post("/phone/twilio", content=urlencode(call), headers=twilio_headers(call))
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "store_unavailable" and "wss://" not in refused.text
    assert refused.headers["retry-after"] == "5"
    # Control: the same webhook at a replica with no store at all (one process) is answered.
    one = {k: v for k, v in down.items() if not k.startswith(("REDIS_", "REPLICA_ID"))}
    async with replica(one) as alone:
        answered = await alone.post("/phone/twilio", content=urlencode(call), headers=twilio_headers(call))
    assert answered.status_code == 200, answered.text


async def test_a_webhook_record_deleted_from_the_store_reopens_no_replay_where_it_was_answered(
    replicas: Replicas,
) -> None:
    """Whoever may write to the store may delete a webhook's record. The replica that answered it
    keeps its own copy, so the replay is refused there still (docs/security.md, Known limits, says
    what remains)."""
    call = {"CallSid": "CA" + "f" * 32, "From": "+14155550100", "To": "+14155550199"}
    body, headers = urlencode(call).encode(), twilio_headers(call)
    first = await replicas.a.post("/phone/twilio", content=body, headers=headers)
    assert first.status_code == 200, first.text
    admin = replicas.store.admin()
    try:
        deleted = [admin.delete(key) for key in admin.scan_iter("*webhook:*")]
    finally:
        admin.close()
    assert deleted == [1] and replicas.kept_for() == []  # the attacker's part: the record is gone
    replayed = await replicas.a.post("/phone/twilio", content=body, headers=headers)
    assert replayed.status_code == 403 and "wss://" not in replayed.text, replayed.text
    # The refused replay wrote the record again, so the other replica refuses it now too (sent there
    # first, it would have been answered: the store was all that replica had).
    elsewhere = await replicas.b.post("/phone/twilio", content=body, headers=headers)
    assert elsewhere.status_code == 403, elsewhere.text
