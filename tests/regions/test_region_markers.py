"""What a caller, not a region, can make another region do through a start relayed there: nothing a
region alone may say (that the start spilled over, so the token holds a handed call's place), no
call token that a shared front door could send to a region it does not open, and no key other than
the one the arriving region checked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from dispatcher.regions.config import Regions
from dispatcher.regions.peers import STATE_PATH
from dispatcher.regions.signing import NONCE, RELAYED_BY, SIGNATURE, SPILLED, TIME, VERSION, RegionSigner, _mac
from tests.dispatcher.conftest import API_KEY
from tests.regions.support import SECRET, regions
from tests.regions.test_phone_across_regions import TWILIO_TOKEN, ws_base
from tests.regions.test_phone_handoff_limits import ask
from tests.regions.test_spill_over import AUTH


def test_a_callers_own_spilled_marker_is_not_believed_by_the_region_a_pinned_start_is_relayed_to(
        tmp_path: Path) -> None:
    """A pinned start with no marker and one with the client's forged marker, over one pair: had us
    believed either as eu's word, its token would be a handed call's, holding us's only place."""
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
    with regions(tmp_path, ("eu", "us"), {"eu": common, "us": {**common, "MAX_CONCURRENT_SESSIONS": "1"}}) \
            as (urls, _):
        body = {"transport": "twilio", "region": "us"}  # pinned: eu relays it as it came, no spill of its own
        for spilled in (None, "mars forged_by_client"):
            forged = {**AUTH, **({SPILLED: spilled} if spilled else {})}
            for _ in range(100):  # until eu's polling has found us
                first = httpx.post(f"{urls['eu']}/start", json=body, headers=forged, timeout=10)
                if first.status_code != 503:
                    break
                time.sleep(0.1)
            assert first.status_code == 201, (spilled, first.text)
        # us took no client's header as eu's word: neither token is a handed call's holding us's only
        # place for its whole life (300 s), so eu's real hand-off of a carrier's call to us is taken.
        signer = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode()))
        seen = httpx.get(f"{urls['us']}{STATE_PATH}", headers=signer.headers("us", "GET", STATE_PATH), timeout=5)
        room = seen.json()["capacity"]["room"]  # what every peer's spill-over reads, for every transport
        handoff = ask(urls, "us")
        assert (room, handoff.status_code) == (1, 200), (room, handoff.text)


OTHER = "another-key-of-this-deployment"


@pytest.fixture(scope="module")
def front_door_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """eu and us behind one front door, each with two keys: the module's last three tests' regions,
    started once (each test uses its own keys and sessions, and leaves both regions running)."""
    common = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PHONE_PUBLIC_URL": "https://voice.example.com",
              "DISPATCHER_API_KEYS": f"{API_KEY},{OTHER}"}
    with regions(tmp_path_factory.mktemp("front-door"), ("eu", "us"), {"eu": common, "us": common}) as (urls, _):
        yield urls


def test_a_call_token_minted_here_behind_a_shared_front_door_opens_a_call_here(front_door_pair: dict[str, str]) -> None:
    urls = front_door_pair
    answer = httpx.post(f"{urls['eu']}/start", json={"transport": "twilio"}, headers=AUTH, timeout=10)
    assert answer.status_code == 201, answer.text
    # The token opens a call at eu only (token_wrong_region elsewhere); the front door may send
    # the carrier's stream to us.
    assert answer.json()["wsUrl"].startswith(ws_base(urls["eu"])), answer.json()["wsUrl"]


def test_a_start_relayed_with_two_keys_is_the_first_keys_as_the_arriving_region_checked(
        front_door_pair: dict[str, str]) -> None:
    """Two `Authorization` headers: eu checks (and charges) the first; the region it relays the start
    to must start it for that key too, never for the second, whose own limits nobody checked."""
    urls = front_door_pair
    two_keys = [("Authorization", f"Bearer {API_KEY}"), ("Authorization", f"Bearer {OTHER}")]
    for _ in range(100):  # until eu's polling has found us
        started = httpx.post(f"{urls['eu']}/start", json={"region": "us"}, headers=two_keys, timeout=10)
        if started.status_code != 503:
            break
        time.sleep(0.1)
    assert started.status_code == 201, started.text
    session = started.json()["session_id"]
    mine = httpx.get(f"{urls['us']}/sessions/{session}", headers=AUTH, timeout=10)
    theirs = httpx.get(f"{urls['us']}/sessions/{session}", headers={"Authorization": f"Bearer {OTHER}"},
                       timeout=10)
    assert (mine.status_code, theirs.status_code) == (200, 404), (mine.text, theirs.text)
    httpx.delete(f"{urls['us']}/sessions/{session}", headers=AUTH, timeout=10)


def test_a_relayed_starts_key_or_spilled_mark_changed_after_signing_is_refused(front_door_pair: dict[str, str]) -> None:
    """The signature covers the key, the Idempotency-Key and the regions' marks (their digest rides in
    the signed nonce): whoever sits inside TLS between regions cannot take a captured relayed start
    and send it first as another key's, or marked spilled. A region of the release before, whose
    nonce carries no digest, is still taken (a rolling deploy)."""
    urls = front_door_pair
    signer = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode()))
    body = b'{"body": {}}'

    def relayed(key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        sent = {"authorization": f"Bearer {key}", "idempotency-key": "k-1", RELAYED_BY: "eu", **(extra or {})}
        return {**sent, **signer.headers("us", "POST", "/start", body, sent), "content-type": "application/json"}

    for swap in ({"authorization": f"Bearer {OTHER}"}, {SPILLED: "mars swapped_after_signing"},
                 {"idempotency-key": "k-2"}):
        taken = httpx.post(f"{urls['us']}/start", content=body, headers={**relayed(API_KEY), **swap}, timeout=10)
        assert taken.status_code == 401, (swap, taken.text)
        assert "changed after signing" in taken.json()["error"]["message"]
    genuine = httpx.post(f"{urls['us']}/start", content=body, headers=relayed(API_KEY), timeout=10)
    assert genuine.status_code == 201, genuine.text
    # The release before signs a nonce of 32 hex digits alone: taken, as it covered no header.
    older = relayed(OTHER)
    older[NONCE] = older[NONCE].partition(".")[0]
    mac = _mac(SECRET.encode(), "eu", "us", "POST", "/start", older[TIME], older[NONCE], body)
    older[SIGNATURE] = VERSION + mac
    assert httpx.post(f"{urls['us']}/start", content=body, headers=older, timeout=10).status_code == 201
