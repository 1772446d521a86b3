"""An answer's latency without the caller's own lag: a caller whose loop stalls after its speech (a
machine short of CPU) sends its silence late, so the bot hears the turn's end late and answers late,
and reads the answer late; the eval times the answer less the most the caller fell behind meanwhile.
Here the stall is a blocking sleep on the caller's loop, once its speech is out."""

from __future__ import annotations

import json
import time

import numpy as np
from websockets.asyncio.server import ServerConnection, serve

from voicefleet.loadtest.audio import SPEECH_RMS, Pcm, rms
from voicefleet.loadtest.carrier_frames import FRAMINGS
from voicefleet.loadtest.lag import own_latency
from voicefleet.loadtest.phone_line import LINE_RATE, PhoneCall
from voicefleet.loadtest.webrtc import MIC_RATE, PacedMic

STALL_SECONDS = 3.0
TONE = (np.sin(2 * np.pi * 300 * np.arange(LINE_RATE) / LINE_RATE) * 8000).astype(np.int16)
QUIET_FRAMES = 25  # the bot's end of turn: 0.5 s of the caller's silence, as its audio says (not its clock)


async def test_a_phone_callers_stall_after_its_speech_is_not_counted_in_the_answers_latency() -> None:
    framing = FRAMINGS["twilio"]
    ids = framing.new_ids()

    async def bot(ws: ServerConnection) -> None:
        spoke, quiet = False, 0
        async for raw in ws:
            samples = framing.bot_audio(json.loads(raw))
            if samples is None:
                continue
            if rms(samples) > SPEECH_RMS:
                spoke, quiet = True, 0
            elif spoke:
                quiet += 1
                if quiet == 1:
                    time.sleep(STALL_SECONDS)  # the caller's loop (this process's) stalls: its line falls behind
                if quiet == QUIET_FRAMES:  # answers at once, 0.5 s of silence after the speech
                    for n in range(1, 26):
                        await ws.send(json.dumps(framing.media(ids, n, n, TONE[:160])))
                    spoke = False

    async with serve(bot, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call = PhoneCall(f"ws://127.0.0.1:{port}/call", framing)
        await call.connect()
        try:
            latency = await call.turn(Pcm(TONE, LINE_RATE), listen_seconds=30)
        finally:
            await call.close()
    assert latency is not None and latency >= STALL_SECONDS  # as read: the caller's stall is in it
    assert call.spoken_at is not None
    assert own_latency(call.lag, call.spoken_at, call.spoken_at + latency) < latency - STALL_SECONDS / 2


async def test_a_webrtc_mic_that_stalls_after_its_speech_is_not_counted_in_the_answers_latency() -> None:
    mic = PacedMic()
    mic.play((np.sin(2 * np.pi * 300 * np.arange(MIC_RATE // 5) / MIC_RATE) * 8000).astype(np.int16))
    while not mic.drained.is_set():
        await mic.recv()
    speech_end = mic.last_speech_at
    assert speech_end is not None
    await mic.recv()
    time.sleep(1.0)  # the caller's loop stalls: the silence after its speech goes out late
    for _ in range(30):  # the bot heard 0.6 s of silence, then answered: heard at once
        await mic.recv()
    heard = time.monotonic()
    assert own_latency(mic.lag, speech_end, heard) < heard - speech_end - 0.5
    assert mic.lag.worst_growth(speech_end, heard) >= 0.9
