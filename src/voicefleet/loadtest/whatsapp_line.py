"""A WhatsApp call as an eval places it: the WebRTC caller with audio alone (WhatsApp's media servers offer
no data channel), its offer posted to the dispatcher's eval entry (`POST /phone/whatsapp/eval_calls`, with
the API key WHATSAPP_NUMBERS runs the number's calls as), which starts the session as Meta's `connect` does
and answers with the bot's SDP as Meta would get it. It is spoken and heard as the phone caller's line is
(evals/phone_call.py): the bot's audio timed by its level, its words read from the session's transcript."""

from __future__ import annotations

import time
from typing import Any

from voicefleet.loadtest.audio import Pcm, loud_segments
from voicefleet.loadtest.lag import LagTrace
from voicefleet.loadtest.phone_line import StreamClosed, reply_latency
from voicefleet.loadtest.webrtc import CallEnded, OfferRejected, WebRTCClient, post_json

ROUTE = "/phone/whatsapp/eval_calls"
CONNECT_TIMEOUT = 60.0  # ICE, once the offer's answer came (a cold bot is waited for in the answer)


class WhatsAppRefused(Exception):
    """The dispatcher refused the call, in its own words (a foreign number, no WhatsApp configured…)."""


class WhatsAppLine:
    """One eval's WhatsApp call to `number` (None: the key's one number) at `base_url`."""

    def __init__(self, base_url: str, headers: dict[str, str], *, number: str | None, release: str | None,
                 body: dict[str, Any]) -> None:
        self._asked: dict[str, Any] = {"body": body}
        if number is not None:
            self._asked["phone_number_id"] = number
        if release is not None:
            self._asked["release"] = release
        self._url, self._headers = f"{base_url.rstrip('/')}{ROUTE}", headers
        self.client = WebRTCClient("", headers=headers, signal=self._signal, data_channel=False,
                                   connect_timeout=CONNECT_TIMEOUT)
        self.session_id: str | None = None
        self.release: str | None = None
        self.spoken_at: float | None = None  # the last turn's end of speech, its reply timed from there

    async def _signal(self, offer: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await post_json(self._url, {**self._asked, "sdp": offer["sdp"]}, headers=self._headers)
        except OfferRejected as refused:
            error = refused.body.get("error") if isinstance(refused.body, dict) else None
            said = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(refused.body)
            raise WhatsAppRefused(f"the WhatsApp call was refused ({refused.status} {said})"[:400]) from None
        self.session_id, self.release = answer.get("session_id"), answer.get("release")
        return {"sdp": answer["sdp"], "type": "answer"}

    async def connect(self) -> None:
        await self.client.connect()

    @property
    def times(self) -> list[float]:
        return self.client.recording.times

    @property
    def levels(self) -> list[float]:
        return self.client.recording.levels

    @property
    def lag(self) -> LagTrace:
        return self.client.mic.lag

    def behind(self) -> float:
        return self.client.mic.behind()

    def closed(self) -> bool:
        return self.client.ended.is_set()

    def first_audio_at(self) -> float | None:
        segments = loud_segments(self.times, self.levels)
        return segments[0].start if segments else None

    async def turn(self, speech: Pcm, *, listen_seconds: float) -> float | None:
        """Says `speech` and listens until a whole reply was heard (at most `listen_seconds`): the reply's
        latency from the end of the speech, or None without one."""
        began = time.monotonic()
        try:
            await self.client.talk(speech, listen_seconds=0, lead_seconds=0)
        except CallEnded as ended:
            raise StreamClosed(str(ended)) from None
        last = self.client.mic.last_speech_at
        spoken = last if last is not None and last >= began else time.monotonic()  # a silent turn: from its end
        self.spoken_at = spoken
        return await reply_latency(self.times, self.levels, spoken, listen_seconds, self.closed)

    async def press(self, digits: str) -> None:
        raise ValueError("this caller sends no keys on a WhatsApp call (RFC 4733 events): dtmf is a phone call's")

    async def close(self) -> None:
        await self.client.close()
