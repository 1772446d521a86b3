"""The front's own word of the edge's drain (docs/sip.md#draining): once the supervisor starts draining, Kamailio
answers each new INVITE `503` with Retry-After itself, so none reaches a draining worker; requests within a call
(a BYE, a re-INVITE) still reach theirs. The supervisor tells it with one SIP request of its own (DRAIN_METHOD) to
the front's port, from the address the front's own requests to the workers leave from (sipedge/worker_place.py
`front_host`), carrying the drain's token for this start in DRAIN_HEADER: the front sets its flag and answers 200 to
that request alone. From any other source, or without that token, the header is taken off and the request goes on
as a stranger's (405 or 403), so the word is refused as a stranger's is. Kamailio offers no other channel: no RPC
socket, whose command set would be all of Kamailio's (stop it, place calls, flush its digest guards). Should the
word not get through, the workers still answer 503 themselves (sipedge/edge.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket

from sipedge.config import EdgeConfig
from sipedge.worker_place import front_host

log = logging.getLogger("sipedge")

DRAIN_METHOD = "NOTIFY"  # outside a call, a stranger's is refused 405: only the token's holder gets the 200
DRAIN_HEADER = "P-Edge-Drain"
DRAIN_TABLE, DRAIN_KEY = "edge", "draining"
TELL_SECONDS = 2.0  # one request: Kamailio answers it at once, unless the host is very busy
TELL_TRIES = 3
TELL_BACKOFF_SECONDS = 0.5  # doubled after each failed try


def drain_params() -> str:
    """The kamailio.cfg's lines for the drain's flag: its table."""
    return f'modparam("htable", "htable", "{DRAIN_TABLE}=>size=1;")'


def drain_from_start() -> str:
    """A kamailio.cfg's route setting the flag as Kamailio starts: the file a front started again during the drain
    reads, so it refuses new calls from its first request, before the supervisor's word reaches it."""
    return f"event_route[htable:mod-init] {{\n    $sht({DRAIN_TABLE}=>{DRAIN_KEY}) = 1;\n}}\n"


def drain_route(config: EdgeConfig, token: str) -> str:
    """The request route's first lines: the supervisor's word sets the flag; anyone else's header is taken off."""
    return (f'    if (is_present_hf("{DRAIN_HEADER}")) {{\n'
            f'        if (is_method("{DRAIN_METHOD}") && !has_totag() && $si == "{front_host(config.sip_address)}"\n'
            f'            && $hdr({DRAIN_HEADER}) == "{token}") {{\n'
            f'            $sht({DRAIN_TABLE}=>{DRAIN_KEY}) = 1; sl_send_reply("200", "OK"); exit;\n'
            '        }\n'
            f'        remove_hf("{DRAIN_HEADER}");  # not the supervisor\'s: a stranger\'s request like any other\n'
            '    }\n')


def draining_condition() -> str:
    """A Kamailio condition: the supervisor has told the front the edge drains."""
    return f"$sht({DRAIN_TABLE}=>{DRAIN_KEY}) == 1"


def _ask(host: str, port: int, token: str) -> str:
    """One try: the status line of the front's answer to the drain's request, or why there was none."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as asking:
        asking.bind((host, 0))  # the source the front believes: the front's own address towards the workers
        asking.settimeout(TELL_SECONDS)
        local, call_id = asking.getsockname()[1], f"drain-{secrets.token_hex(8)}"
        where = f"[{host}]" if family == socket.AF_INET6 else host
        asking.sendto((f"{DRAIN_METHOD} sip:front@{where}:{port} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP {where}:{local};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n"
                       f"From: <sip:supervisor@{where}>;tag=drain\r\nTo: <sip:front@{where}:{port}>\r\n"
                       f"Call-ID: {call_id}\r\nCSeq: 1 {DRAIN_METHOD}\r\nEvent: edge-drain\r\n"
                       f"{DRAIN_HEADER}: {token}\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
        try:
            while True:
                answer = asking.recv(65535).decode(errors="replace")
                status = answer.split("\r\n", 1)[0]
                if call_id in answer and not status.startswith("SIP/2.0 1"):
                    return status
        except OSError as error:
            return f"no answer within {TELL_SECONDS:g} s" if isinstance(error, TimeoutError) else str(error)


async def tell_front_draining(config: EdgeConfig, token: str) -> bool:
    """Sets the front's drain flag with the drain's request carrying `token`; whether Kamailio took it (its 200).
    Each try is bounded (TELL_SECONDS), TELL_TRIES in all with a doubling pause; a failure is logged, never raised:
    the drain goes on, the workers answering 503 themselves."""
    host = front_host(config.sip_address)
    pause, said = TELL_BACKOFF_SECONDS, ""
    for attempt in range(1, TELL_TRIES + 1):
        said = await asyncio.to_thread(_ask, host, config.sip_port, token)
        if said.startswith("SIP/2.0 200"):
            return True
        if attempt < TELL_TRIES:
            await asyncio.sleep(pause)
            pause *= 2
    log.error("sipedge: Kamailio was not told the edge drains (udp %s:%d, %d tries: %s); the workers refuse new "
              "calls 503 themselves", host, config.sip_port, TELL_TRIES, said[:200])
    return False
