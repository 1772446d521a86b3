"""The default bot over Pipecat's generic WebSocket transport: a client speaking Pipecat's protobuf
frames (pipecat's own `ProtobufFrameSerializer`, as Pipecat's WebSocket clients do) asks the dispatcher
for a `websocket` session, connects to the generic route with its one-time token, and talks to the
parrot (examples/parrot/bot.py) run by voicefleet's host (`python -m bot`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pytest
from pipecat.frames.frames import InputAudioRawFrame, InputTransportMessageFrame, OutputAudioRawFrame
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.phone.conftest import SPEECH, phone_env, wait_active_sessions, wait_for_idle_bot
from tests.support.audio import BOT_AUDIO_RMS, SPEECH_RMS, Pcm, echo_similarity, read_wav, rms
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

# A real dispatcher, a real bot process importing Pipecat and Silero; room for the dispatcher's start and
# a cold bot's on a busy machine (their safety nets: 150 s and GREETING_TIMEOUT).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RATE = 16000  # the parrot's pipeline rate off a phone line (examples/parrot/bot.py sample_rate)
FRAME = RATE // 50  # 20 ms
# The greeting follows the bot's start, which is not always a warm bot's: an idle bot starved of CPU on a
# busy machine that does not take its assignment within the dispatcher's 2 s is skipped (by design:
# dispatcher/reserve/claim.py ASSIGN_TIMEOUT_SECONDS) and the session's bot starts cold, importing
# Pipecat and Silero, which took over 26 s at a load average of 14 (docs/testing.md). A safety net, as
# the dispatcher's own start's is; a failure's message says which start it was (call_log).
GREETING_TIMEOUT = 120.0


class ProtobufClient:
    """A WebSocket client in the shape of Pipecat's: 20 ms of 16-bit mono audio every 20 ms (silence
    unless it is speaking), each an audio frame in Pipecat's protobuf. What the bot sends is kept in
    order: its audio, and the RTVI events the parrot sends Pipecat's clients (the turns' edges)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.serializer = ProtobufFrameSerializer()
        self.speech: asyncio.Queue[bytes] = asyncio.Queue()
        self.heard: asyncio.Queue[bytes | str] = asyncio.Queue()  # audio, or an RTVI event's type
        self.events: list[str] = []  # every RTVI event's type, for a failure's message
        # For a failure's message: the call as this client lived it, seconds from its connection on.
        self.opened, self.opened_at = asyncio.get_running_loop().time(), datetime.now().strftime("%H:%M:%S,%f")[:-3]
        self.timeline: list[str] = []
        self.behind = 0.0  # the most the microphone fell behind its 20 ms cadence (a busy machine)
        self.tasks = [asyncio.create_task(self._microphone()), asyncio.create_task(self._speaker())]

    async def say(self, pcm16: bytes) -> None:
        self.mark("speaking")
        for offset in range(0, len(pcm16) - FRAME * 2 + 1, FRAME * 2):
            self.speech.put_nowait(pcm16[offset : offset + FRAME * 2])
        await self.speech.join()
        self.mark("spoke")

    async def bot_audio(self, seconds: float, timeout: float) -> bytes:
        """At least `seconds` of the bot's audio."""
        audio = b""
        while len(audio) < seconds * RATE * 2:
            item = await asyncio.wait_for(self.heard.get(), timeout)
            audio += item if isinstance(item, bytes) else b""
        return audio

    def mark(self, what: str) -> None:
        self.timeline.append(f"{asyncio.get_running_loop().time() - self.opened:.2f} s {what}")

    def told(self) -> str:
        """What this client lived of the call, for a failure's message."""
        return (f"client, connected at {self.opened_at}: {self.timeline}; "
                f"microphone at most {self.behind:.2f} s behind; RTVI events: {self.events}")

    async def reply(self, timeout: float) -> bytes:
        """The bot's audio from the user's turn on, to the stop after the reply's `bot-started-speaking`
        (the greeting's own stop may come inside the turn). The echo is the claim, so no
        `user-stopped-speaking` is awaited (docs/testing.md, A busy machine)."""
        await self._until("user-started-speaking", timeout)
        audio, speaking = b"", False
        while True:
            item = await asyncio.wait_for(self.heard.get(), timeout)
            if isinstance(item, bytes):
                audio += item
            elif item == "bot-started-speaking":
                speaking = True
            elif item == "bot-stopped-speaking" and speaking:
                return audio

    async def _until(self, event: str, timeout: float) -> None:
        while await asyncio.wait_for(self.heard.get(), timeout) != event:
            pass

    async def hang_up(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.ws.close()

    async def _microphone(self) -> None:
        loop = asyncio.get_running_loop()
        began, sent = loop.time(), 0
        silence = bytes(FRAME * 2)
        with contextlib.suppress(ConnectionClosed):
            while True:
                chunk = self.speech.get_nowait() if not self.speech.empty() else None
                frame = OutputAudioRawFrame(audio=chunk or silence, sample_rate=RATE, num_channels=1)
                data = await self.serializer.serialize(frame)
                assert isinstance(data, bytes)
                await self.ws.send(data)
                if chunk is not None:
                    self.speech.task_done()
                sent += 1
                self.behind = max(self.behind, loop.time() - (began + sent * 0.02))
                await asyncio.sleep(max(0.0, began + sent * 0.02 - loop.time()))

    async def _speaker(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                assert isinstance(message, bytes), f"Pipecat's protobuf frames are binary: {message!r}"
                frame = await self.serializer.deserialize(message)
                if isinstance(frame, InputAudioRawFrame):
                    assert (frame.sample_rate, frame.num_channels) == (RATE, 1)
                    if not self.timeline or not self.timeline[-1].endswith("bot audio"):
                        self.mark("bot audio")
                    self.heard.put_nowait(frame.audio)
                elif isinstance(frame, InputTransportMessageFrame) and frame.message.get("label") == "rtvi-ai":
                    self.mark(frame.message["type"])
                    self.events.append(frame.message["type"])
                    self.heard.put_nowait(frame.message["type"])
        self.mark(f"socket closed: {self.ws.close_code} {self.ws.close_reason!r}")


def voiced(speech: Pcm) -> Pcm:
    """The utterance without the recording's leading and trailing silence: what the parrot says back."""
    blocks = [i for i in range(0, len(speech.samples), FRAME) if rms(speech.samples[i : i + FRAME]) > SPEECH_RMS]
    return Pcm(speech.samples[blocks[0] : blocks[-1] + FRAME], speech.sample_rate)


def turns_heard(dispatcher: DispatcherProcess, session_id: str, reply_seconds: float) -> str:
    """Why an echo fell short, in this session's bot's own words (the module's tests share one
    dispatcher log): the turns its parrot answered and took back, its VAD's start and end of speech,
    and Pipecat's VAD ending a turn because no audio came for a second (a stalled path, not the relay)."""
    said = [line.rsplit(" - ", 1)[-1] for line in dispatcher.log_path.read_text().splitlines()
            if f"[{session_id}]" in line and ("parrot:" in line or "forcing speech stop" in line
                                               or re.search(r"(Bot|User) (started|stopped) speaking", line))]
    return f"a {reply_seconds:.2f} s reply; the bot said: {said}"


def call_log(dispatcher: DispatcherProcess, session_id: str, last: int = 60) -> str:
    """This call's lines of the dispatcher's log, its bot's among them (the tests share one log): its bot
    claimed warm or started cold, the relay's account of the call (frames each way, a side closed for
    its rate) and the bot's pipeline."""
    lines = [f"{line[:23]} bot: {line.rsplit(' - ', 1)[-1]}" if "dispatcher.bot:" in line else line
             for line in dispatcher.log_path.read_text(errors="replace").splitlines()
             if session_id in line or "dispatcher.phone: phone call:" in line]  # the relay's lines name no call
    return "\n".join(lines[-last:])


async def greeted(client: ProtobufClient, dispatcher: DispatcherProcess, session_id: str) -> bytes:
    """The first 0.1 s of the parrot's greeting (its tone), or a failure telling the call's story."""
    try:
        return await client.bot_audio(0.1, timeout=GREETING_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"no greeting within {GREETING_TIMEOUT:g} s; {client.told()}\n{call_log(dispatcher, session_id)}")


@pytest.fixture(scope="module")
def parrot_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    # At debug, the bot's output transport logs each "Bot started/stopped speaking": a failure's message
    # then tells an event the bot never emitted from one lost on the way to the client.
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "BOT_LOG_LEVEL": "DEBUG", "LOG_LEVEL": "debug"}
    with run_dispatcher(tmp_path_factory.mktemp("parrot-websocket"), env) as running:
        yield running


async def test_a_protobuf_websocket_client_hears_the_parrot_say_its_words_back(
    parrot_dispatcher: DispatcherProcess,
) -> None:
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        answer = await api.post("/start", json={"transport": "websocket"})
        assert answer.status_code == 201, answer.text
        started = answer.json()
        assert started["wsUrl"].endswith("/ws/generic/voicefleet")
        ws = await connect(f"{started['wsUrl']}/{started['token']}", proxy=None, open_timeout=10)
        client = ProtobufClient(ws)
        try:
            greeting = await greeted(client, parrot_dispatcher, started["sessionId"])
            assert rms(np.frombuffer(greeting, dtype=np.int16)) > BOT_AUDIO_RMS  # the tone: it listens

            speech = read_wav(SPEECH)
            await client.say(speech.samples.astype(np.int16).tobytes())
            # The reply: a beep, then the utterance itself, sample for sample (no codec on this path).
            try:
                reply = await client.reply(timeout=30)
            except TimeoutError:
                pytest.fail(f"no reply within 30 s; {client.told()}\n"
                            f"{call_log(parrot_dispatcher, started['sessionId'])}")
            similarity = echo_similarity(voiced(speech), np.frombuffer(reply, dtype=np.int16), RATE)
            assert similarity > 0.7, turns_heard(parrot_dispatcher, started["sessionId"], len(reply) / 2 / RATE)
        finally:
            await client.hang_up()
        assert await wait_active_sessions(api, 0) == 0  # the client hung up: its machine ended


async def test_a_reply_soon_after_the_greeting_is_told_as_speech_of_its_own(
    parrot_dispatcher: DispatcherProcess,
) -> None:
    """A short utterance at once after the greeting: its reply has its own `bot-started-speaking` and
    `bot-stopped-speaking`, though it comes within the 3 s Pipecat's output waits for more audio before
    it takes a sound that stopped for the end of the bot's speech (the greeting's, then, too)."""
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        started = (await api.post("/start", json={"transport": "websocket"})).json()
        client = ProtobufClient(await connect(f"{started['wsUrl']}/{started['token']}", proxy=None, open_timeout=10))
        try:
            await greeted(client, parrot_dispatcher, started["sessionId"])
            speech = read_wav(SPEECH)
            short = Pcm(speech.samples[: RATE * 3 // 2], speech.sample_rate)  # its first words, 1.5 s
            await client.say(short.samples.astype(np.int16).tobytes())
            try:
                reply = await client.reply(timeout=10)
            except TimeoutError:
                pytest.fail(f"no reply of its own within 10 s; {client.told()}\n"
                            f"{call_log(parrot_dispatcher, started['sessionId'])}")
            assert echo_similarity(voiced(short), np.frombuffer(reply, dtype=np.int16), RATE) > 0.7, \
                turns_heard(parrot_dispatcher, started["sessionId"], len(reply) / 2 / RATE)
        finally:
            await client.hang_up()
        assert await wait_active_sessions(api, 0) == 0


async def test_a_relayed_socket_is_not_compressed_though_the_client_offers_it(
    parrot_dispatcher: DispatcherProcess,
) -> None:
    """Audio does not deflate, and an inflated frame is bytes its sender never sent: a compressed
    socket fills the relay's byte bound with a few KiB on the wire (docs/security.md)."""
    async with api_client(base_url=parrot_dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        started = (await api.post("/start", json={"transport": "websocket"})).json()
        # websockets' client offers permessage-deflate unless told not to.
        async with connect(f"{started['wsUrl']}/{started['token']}", proxy=None, open_timeout=10) as ws:
            assert "permessage-deflate" in (ws.request.headers.get("Sec-WebSocket-Extensions") or "")
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        assert await wait_active_sessions(api, 0) == 0
