"""The load generator's own CPU, split by where it goes (src/voicefleet/loadtest/own_cost.py): work on another
thread (aiortc's decoders) is not the loop's, work charged to a phase is that phase's, and the
caller's mic and its recording of the bot's audio charge theirs. Amounts are CPU seconds burnt on
purpose, never wall-clock time, so a busy machine only makes the test slower."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame, Packet

from voicefleet.loadtest.audio import SPEECH_RMS, rms
from voicefleet.loadtest.own_cost import DECODERS, HEARD, LEDGER, LOOP_REST, MIC, PHASES, CpuLedger, OwnCost
from voicefleet.loadtest.result import tables
from voicefleet.loadtest.summary import summarise
from voicefleet.loadtest.webrtc import BLOCK_SAMPLES, CATCH_UP_BLOCKS, MIC_RATE, PacedMic, Recording, silent_packet

BURN = 0.05  # CPU seconds


def burn(seconds: float) -> None:
    """Spends `seconds` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        sum(range(1000))


def test_another_threads_cpu_is_not_the_loops() -> None:
    cost = OwnCost(CpuLedger())
    worker = threading.Thread(target=burn, args=(BURN,))
    worker.start()
    worker.join()  # an exited thread's CPU still counts: the decoders end with their sessions
    phases = cost.phases()
    assert set(phases) == set(PHASES)
    assert phases[DECODERS] >= BURN
    assert phases[LOOP_REST] < BURN and phases[MIC] == phases[HEARD] == 0.0


def test_work_charged_to_a_phase_is_that_phases_and_is_shared_by_the_sessions() -> None:
    ledger = CpuLedger()
    cost = OwnCost(ledger)
    with ledger.charge(MIC):
        burn(BURN)
    burn(BURN)  # on the loop's thread, charged to nothing: the rest
    phases = cost.phases()
    assert phases[MIC] >= BURN and phases[LOOP_REST] >= BURN
    assert phases[MIC] < 2 * BURN and phases[DECODERS] < BURN
    figures = cost.figures(sessions=4)
    assert figures["cpu_seconds_per_session_by_phase"][MIC] >= BURN / 4
    assert sum(figures["cpu_seconds_per_session_by_phase"].values()) <= figures["cpu_seconds_per_session"] + 0.002
    assert OwnCost(ledger).figures(sessions=0)["cpu_seconds_per_session_by_phase"] is None


def test_the_callers_mic_and_recording_charge_their_phases() -> None:
    before = LEDGER.snapshot()
    mic = PacedMic()
    mic.play(np.full(3200, 4000, dtype=np.int16))

    async def two_frames() -> None:
        for _ in range(2):
            await mic.recv()

    asyncio.run(two_frames())
    frame = AudioFrame.from_ndarray(np.full((1, 960), 3000, dtype=np.int16), format="s16", layout="mono")
    frame.sample_rate = 48000
    Recording().add(frame)
    after = LEDGER.snapshot()
    assert after[MIC] > before.get(MIC, 0.0)
    assert after[HEARD] > before.get(HEARD, 0.0)


def mic_frame(block: np.ndarray, n: int) -> AudioFrame:
    frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.time_base, frame.pts = MIC_RATE, fractions.Fraction(1, MIC_RATE), n * BLOCK_SAMPLES
    return frame


def test_the_report_shows_the_cpu_by_phase_and_an_older_result_without_it() -> None:
    own = {"cpu_seconds": 2.0, "cpu_seconds_per_session": 1.0, "cpu_share_of_one_core": 0.1,
           "loop_lag_p99_seconds": 0.01,
           "cpu_seconds_per_session_by_phase": {MIC: 0.25, HEARD: 0.125, DECODERS: 0.375, LOOP_REST: 0.25}}
    text = tables(summarise([]), own)
    header, row = text.split("GENERATOR CPU S/SESSION", 1)[1].splitlines()[:2]
    assert "MIC (ENCODE)" in header and "DECODER THREADS" in header
    assert row.split()[-4:] == ["0.250", "0.125", "0.375", "0.250"]
    del own["cpu_seconds_per_session_by_phase"]
    assert "GENERATOR CPU S/SESSION" not in tables(summarise([]), own)


def test_silence_is_sent_as_the_packet_it_encodes_to_and_speech_is_encoded() -> None:
    """The mic sends silence without encoding it (a quarter of the generator's CPU per session once):
    the packet must be what the encoder makes of silence, decode to silence, and keep the pace."""
    encoder, encoded = OpusEncoder(), []
    for n in range(8):
        encoded += encoder.encode(mic_frame(np.zeros(BLOCK_SAMPLES, dtype=np.int16), n))[0]
    assert encoded[-1] == silent_packet()
    mic = PacedMic()
    mic.play(np.zeros(BLOCK_SAMPLES * 2, dtype=np.int16))
    mic.play((np.sin(np.arange(BLOCK_SAMPLES * 10) / 3) * 8000).astype(np.int16))

    async def packets(n: int) -> list[Packet]:  # type: ignore[type-arg]
        return [await mic.recv() for _ in range(n)]

    sent = asyncio.run(packets(14))
    assert [p.pts for p in sent] == [n * 960 for n in range(14)]  # one 20 ms packet a block, in order
    decoder = OpusDecoder()
    loudness = [max(rms(f.to_ndarray().reshape(-1)) for f in decoder.decode(JitterFrame(bytes(p), 0)))
                for p in sent]
    assert loudness[:2] == [0.0, 0.0]
    assert max(loudness[4:12]) > SPEECH_RMS  # the speech is heard, encoded by the mic's own encoder


def test_a_mic_behind_real_time_catches_up_a_few_blocks_per_turn_of_the_loop() -> None:
    """One 20 ms block per turn of the event loop fell behind for good once a turn took longer."""
    mic = PacedMic()
    other_ran: list[int] = []

    async def behind() -> list[int]:
        await mic.recv()  # starts the mic's clock
        mic._start = (mic._start or 0.0) - 1.0  # as if the loop had not let it send for a second
        asyncio.get_running_loop().call_soon(lambda: other_ran.append(mic._sent))
        for _ in range(2 * CATCH_UP_BLOCKS + 2):
            await mic.recv()
        return other_ran

    ran = asyncio.run(behind())
    # The other callback ran only once the mic yielded: after CATCH_UP_BLOCKS blocks in a row, not each one.
    assert ran == [CATCH_UP_BLOCKS * BLOCK_SAMPLES]
