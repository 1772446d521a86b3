"""What a region a call is handed to answers, a real regional dispatcher (`python -m dispatcher`)
asked as its peer asks, signed with the regions' secret (the asking region need not run): its own
`REGIONS` URL even behind a front door that every region shares as PHONE_PUBLIC_URL, no more stream
tokens than it has room for calls (also when two replicas of the region, sharing a redis-server as
the stack's user, mint them; none while that store is down), and a 400 for a signed body too deeply
nested to read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from dispatcher.regions.calls import CALLS_PATH
from dispatcher.regions.config import Regions
from dispatcher.regions.signing import RELAYED_BY, SPILLED, RegionSigner
from tests.regions.support import SECRET, region_env
from tests.regions.test_phone_across_regions import TWILIO_TOKEN, ws_base
from tests.regions.test_spill_over import AUTH
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # us answers carriers at the front door both regions share; it has room for one call.
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PHONE_PUBLIC_URL": "https://voice.example.com"}
    with us_alone(tmp_path_factory.mktemp("handoff-limits"), {**common, "MAX_CONCURRENT_SESSIONS": "1"}) as urls:
        yield urls


@contextmanager
def us_alone(tmp_path: Path, settings: dict[str, str]) -> Iterator[dict[str, str]]:
    """us alone, eu listed but not running: what eu would send us is signed here, as eu signs it
    (a region answers what a peer asks whether or not it reads that peer)."""
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}
    with run_dispatcher(tmp_path, {**region_env("us", urls), **settings}, port=int(urls["us"].rsplit(":", 1)[1]),
                        log_name="us.log"):
        yield urls


def ask(urls: dict[str, str], to: str, body: bytes | None = None, at: str | None = None) -> httpx.Response:
    """What eu's hand-off sends `to` (at the replica `at`, else at its `REGIONS` URL), signed."""
    body = body if body is not None else json.dumps({"carrier": "twilio", "reason": "at_capacity"}).encode()
    headers = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode())).headers(to, "POST", CALLS_PATH, body)
    return httpx.post(f"{at or urls[to]}{CALLS_PATH}", content=body, headers=headers, timeout=5)


def test_a_region_with_room_for_one_call_hands_out_one_stream_behind_the_front_door(pair: dict[str, str]) -> None:
    urls = pair
    answers = [ask(urls, "us") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 429, 429, 429], [a.text for a in answers]
    assert answers[1].json()["error"]["code"] == "at_capacity"
    # Its own URL, never the front door's: a stream landing at eu would be refused (token_wrong_region).
    assert answers[0].json()["stream"].startswith(ws_base(urls["us"]) + "/ws/twilio/"), answers[0].text


def test_a_signed_body_nested_too_deep_to_read_is_a_400(pair: dict[str, str]) -> None:
    urls = pair
    answer = ask(urls, "us", b"[" * 20000 + b"]" * 20000)  # 40 KB, under MAX_REQUEST_BYTES
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request", answer.text


def test_handed_calls_are_held_to_the_carriers_start_rate_when_their_tokens_are_minted(tmp_path: Path) -> None:
    us = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "START_RATE_PER_KEY": "0.01", "START_BURST_PER_KEY": "1"}
    with us_alone(tmp_path, us) as urls:  # eu's hand-offs, signed as eu's
        answers = [ask(urls, "us") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 429], [a.text for a in answers]
        assert answers[1].json()["error"]["code"] == "rate_limited" and answers[1].headers["retry-after"]


def test_two_replicas_of_a_region_mint_no_more_handed_calls_together_than_its_room(tmp_path: Path) -> None:
    urls = {"eu": f"http://127.0.0.1:{free_port()}", "us": f"http://127.0.0.1:{free_port()}"}  # eu: asked as
    with redis_server(tmp_path) as store, ExitStack() as stack:
        us = {**region_env("us", urls), **store.env, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "MAX_CONCURRENT_SESSIONS": "2",
              "PHONE_TOKEN_SECRET": "phone-token-secret-of-the-region-" + "u" * 8}
        replicas = [stack.enter_context(run_dispatcher(
            tmp_path, {**us, "REPLICA_ID": f"us-{n}"}, port=int(urls["us"].rsplit(":", 1)[1]) if n == 0 else None,
            log_name=f"us-{n}.log")) for n in range(2)]
        # Each token holds one of the region's two places, wherever it was minted.
        answers = [ask(urls, "us", at=replicas[n % 2].base_url) for n in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 429, 429], [a.text for a in answers]
        assert answers[3].json()["error"]["code"] == "at_capacity"
        store.stop()  # no replica mints on its own count then: eu answers its call itself
        refused = ask(urls, "us", at=replicas[1].base_url)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable", refused.text


def test_a_call_token_start_relayed_here_holds_a_place_as_a_handed_call_does(tmp_path: Path) -> None:
    """`POST /start` for a call token, spilled over from eu: us mints it as a handed call's, so the
    token holds one of us's places until its stream connects; a second has none (us's cap is 1)."""
    with us_alone(tmp_path, {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "MAX_CONCURRENT_SESSIONS": "1"}) as urls:
        signer = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode()))
        body = json.dumps({"transport": "twilio"}).encode()

        def relayed() -> httpx.Response:
            sent = {**AUTH, RELAYED_BY: "eu", SPILLED: "eu at_capacity"}
            headers = {**sent, "content-type": "application/json", **signer.headers("us", "POST", "/start", body, sent)}
            return httpx.post(f"{urls['us']}/start", content=body, headers=headers, timeout=10)

        first, second = relayed(), relayed()
        assert first.status_code == 201 and first.json()["wsUrl"] == ws_base(urls["us"]) + "/ws/twilio", first.text
        assert second.status_code == 429 and second.json()["error"]["code"] == "at_capacity", second.text
