"""A load test's session over SIP (`--transport sip`): no `POST /start`, the call is the start. The
caller INVITEs the edge (sip_line.py), which asks the dispatcher for the session with the number's
API key and answers `200 OK` once the bot has joined, naming the session; from there the session is
measured as a carrier's call is (session.py): the bot's first audio, the turns, the hang-up, the
timeline. Times are from the INVITE: the `200 OK` is the start's answer, the session ready and the
line connected at once."""

from __future__ import annotations

import time

import httpx

from voicefleet.loadtest.phone_line import PhoneCall
from voicefleet.loadtest.record import REFUSED, SessionRecord
from voicefleet.loadtest.session import Call, first_audio, read_timeline, stop, take_turns
from voicefleet.loadtest.sip_eval_token import EvalTokenRefused, sip_eval_token
from voicefleet.loadtest.sip_line import SIP_FRAMING, SipLine, SipRefused


async def run_sip_session(call: Call, http: httpx.AsyncClient, record: SessionRecord) -> None:
    assert call.sip_uri is not None
    began = time.monotonic()
    token = None
    if call.release is not None:  # the pin rides in the INVITE: the edge, not this caller, sends the start
        try:
            token = await sip_eval_token(http, call.base_url, call.headers(), call.release, evaluation=False)
        except EvalTokenRefused as refused:
            record.fail("eval_token_refused", str(refused)[:300])
            return
    line = SipLine(call.sip_uri, answer_seconds=call.ready_timeout, eval_token=token)
    caller = PhoneCall(call.sip_uri.uri, SIP_FRAMING, open_line=line.open)
    try:
        try:
            await caller.connect()
        except SipRefused as refusal:
            record.outcome, record.status, record.code = REFUSED, refusal.status, f"sip_{refusal.status}"
            record.message = str(refusal)
            return
        except ConnectionError as error:
            record.fail("connect_failed", str(error)[:300])
            return
        record.session_id = line.session_id
        record.start_answer = record.ready = record.connected = time.monotonic() - began
        await first_audio(call, caller, record, began)
        if record.outcome == "ok":
            await take_turns(call, caller, record)
    except BaseException:  # cancelled or past its deadline: hung up and stopped at once
        await caller.close()
        await stop(call, http, record)
        raise
    await caller.close()  # BYE: the edge closes the call's stream and the session ends
    await read_timeline(call, http, record)
    if record.bot_end is None:
        await stop(call, http, record)
