"""Review of the front on one worker (sipedge/config.py `front_runs`): a one-process edge lets one source address
hold at most 2 of its 3 calls, "so while the edge places no calls a second trunk always finds a slot"
(docs/sip.md#capacity; sipedge/edge.py: `share = ... max(1, self.capacity - 1)`). A worker behind the front lets one
source take all 3: "a worker behind the front has others beside it ... spreading calls is Kamailio's job". An edge of
the default one worker that adds a trunk's inbound digest credential now runs that one worker behind the front, with
no other worker beside it: one source takes every slot and a second trunk is refused 503. Over UDP a trunk's address
is anyone's to write (front_config.py's own LIMIT_SOURCE comment), so three spoofed INVITEs from the carrier's range
lock the PBX, credential and all, out of the edge while they ring (up to the front's ring limit, answer_seconds +
10 s), and again after. Edge._incoming on calls as the SIP stack hands them (tests/sip/test_call_slots.py's Ringing),
the SIP stack not started. The same test passes for a lone edge (worker=None). Strict-xfail until fixed."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from sipedge.config import load
from sipedge.edge import Edge
from tests.sip.test_call_slots import ringing, wound_down

FILE = """
dispatcher_url = "http://127.0.0.1:9"
sip_address = "127.0.0.1"
sip_port = 5060
rtp_port = 20000
rtp_port_count = 40

[[trunk]]
name = "carrier"
sources = ["127.0.0.20/32"]
numbers = { "+14155550199" = "" }

[[trunk]]
name = "pbx"
sources = ["127.0.0.21/32"]
numbers = { "+14155550199" = "" }
inbound_digest_username = "pbx"
inbound_digest_password_env = "PBX_PASSWORD"
"""
INVITE = "INVITE sip:+14155550199@127.0.0.1 SIP/2.0\r\n\r\n"


async def test_the_one_worker_behind_a_digest_front_keeps_a_slot_for_a_second_trunk(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(FILE)
    edge_config = load({"SIP_EDGE_CONFIG": str(path)}, inbound_passwords=False)  # as the worker loads it
    assert edge_config.front and edge_config.workers == 1  # the default edge, fronted for the pbx's credential
    worker = dataclasses.replace(edge_config, worker=0, front_token="token")  # sipedge/__main__.py's worker 0
    edge = Edge(worker, asyncio.get_running_loop())
    try:
        for slot in range(edge.capacity):  # the carrier's source (or anyone writing its address) rings every slot
            edge._incoming(ringing(slot), "127.0.0.20:0", INVITE)
        pbx = ringing(edge.capacity)
        edge._incoming(pbx, "127.0.0.21:0", INVITE)  # the PBX's call, its credential checked by the front
        assert pbx.admitted_from == "127.0.0.21", f"the PBX's call was refused: {edge.calls_in_flight()} calls, " \
                                                  "every one the carrier source's"
    finally:
        await wound_down(edge)
