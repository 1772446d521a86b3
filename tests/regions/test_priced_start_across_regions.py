"""A SIP call's priced start (the edge's `sip_trunk`, with its credential derived from SIP_EDGE_SECRET)
that the region it reached relays to another region (pinned here; a spill or a key's home relays the
same way) is taken there on the arriving region's signed word: each region's edge has its own secret,
and a relay carries none. A caller's own copy of that word is believed nowhere."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.regions.signing import EDGE_VOUCHED
from tests.regions.support import regions
from tests.regions.test_spill_over import AUTH

SECRETS = {"eu": "eu-edge-control-secret-for-the-tests-0123456789", "us": "us-edge-control-secret-for-the-tests-012345"}
PRICED = {"transport": "exotel", "body": {"call_id": "1@trunk"},
          "sip_trunk": {"trunk": "twilio", "usd_per_minute": 0.0085}}


def _token_payload(token: str) -> dict[str, Any]:
    encoded = token.split(".", 1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))


def test_a_priced_start_relayed_to_another_region_keeps_its_price_and_a_callers_mark_is_refused(
        tmp_path: Path) -> None:
    env = {name: {"SIP_EDGE_SECRET": secret} for name, secret in SECRETS.items()}
    with regions(tmp_path, ("eu", "us"), env) as (urls, _):
        edge = {**AUTH, "X-Voicefleet-Edge-Secret": EdgeSecret(SECRETS["eu"]).edge_credential("http://10.0.0.5:5080")}
        for _ in range(100):  # until eu's polling has found us
            answer = httpx.post(f"{urls['eu']}/start", json={**PRICED, "region": "us"}, headers=edge, timeout=10)
            if answer.status_code != 503:
                break
            time.sleep(0.1)
        assert answer.status_code == 201, answer.text
        payload = _token_payload(answer.json()["token"])
        assert payload["rgn"] == "us"  # minted where it was relayed, with the edge's price
        assert payload["tel"] == {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.0085,
                                  "increment_seconds": 60}
        # The region's word from a caller: at the region it reaches, and straight at the other one.
        forged = {**AUTH, EDGE_VOUCHED: "1"}
        for region in ("eu", "us"):
            refused = httpx.post(f"{urls[region]}/start", json={**PRICED, "region": "us"}, headers=forged, timeout=10)
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "sip_edge_only"


def test_an_unpriced_start_from_a_listed_edge_relayed_to_another_region_is_still_its_edges_call(
        tmp_path: Path) -> None:
    """Its token says so where it is minted (`edge`), so the session's end waits for the edge's word there."""
    edge_url = "http://10.0.0.5:5080"
    env = {"eu": {"SIP_EDGE_SECRET": SECRETS["eu"], "SIP_EDGE_URL": edge_url}, "us": {"SIP_EDGE_SECRET": SECRETS["us"]}}
    unpriced = {key: value for key, value in PRICED.items() if key != "sip_trunk"}
    with regions(tmp_path, ("eu", "us"), env) as (urls, _):
        edge = {**AUTH, "X-Voicefleet-Edge-Secret": EdgeSecret(SECRETS["eu"]).edge_credential(edge_url)}
        for headers, edge_call in ((edge, True), (AUTH, False)):
            for _ in range(100):  # until eu's polling has found us
                answer = httpx.post(f"{urls['eu']}/start", json={**unpriced, "region": "us"}, headers=headers,
                                    timeout=10)
                if answer.status_code != 503:
                    break
                time.sleep(0.1)
            assert answer.status_code == 201, answer.text
            payload = _token_payload(answer.json()["token"])
            assert payload["rgn"] == "us" and "tel" not in payload
            assert payload.get("edge", False) is edge_call
