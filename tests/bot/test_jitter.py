"""The bot's inbound audio jitter buffer (bot/jitter.py): which receivers get it, and the env knob."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from bot.jitter import AIORTC_AUDIO_CAPACITY, BotAudioJitterBuffer, audio_prefetch, install
from voicefleet_settings.names import by_name

ATTR = "_RTCRtpReceiver__jitter_buffer"


def test_prefetch_defaults_to_zero_and_reads_the_environment() -> None:
    assert audio_prefetch({}) == 0
    assert audio_prefetch({"VOICEFLEET_AUDIO_JITTER_PREFETCH": "4"}) == 4
    for bad in ("x", "-1", str(AIORTC_AUDIO_CAPACITY)):
        with pytest.raises(ValueError, match="VOICEFLEET_AUDIO_JITTER_PREFETCH"):
            audio_prefetch({"VOICEFLEET_AUDIO_JITTER_PREFETCH": bad})


async def test_install_replaces_only_this_peers_audio_receiver_and_keeps_it_on_reinstall() -> None:
    client, bot, other = RTCPeerConnection(), RTCPeerConnection(), RTCPeerConnection()
    try:
        client.addTransceiver("audio", direction="sendrecv")
        client.addTransceiver("video", direction="sendrecv")
        await client.setLocalDescription(await client.createOffer())
        await bot.setRemoteDescription(RTCSessionDescription(sdp=client.localDescription.sdp, type="offer"))
        other.addTransceiver("audio", direction="sendrecv")

        assert install(bot, prefetch=1) == 1
        audio, video = bot.getTransceivers()
        buffer = getattr(audio.receiver, ATTR)
        assert isinstance(buffer, BotAudioJitterBuffer)
        assert (buffer.capacity, buffer._prefetch) == (AIORTC_AUDIO_CAPACITY, 1)
        assert not isinstance(getattr(video.receiver, ATTR), BotAudioJitterBuffer)
        # Another peer connection in the same process (e.g. a test client) keeps aiortc's buffer.
        other_buffer = getattr(other.getTransceivers()[0].receiver, ATTR)
        assert type(other_buffer) is JitterBuffer and other_buffer._prefetch == 4
        # Installing again (renegotiation) keeps the buffer and the packets in it.
        assert install(bot, prefetch=1) == 0
        assert getattr(audio.receiver, ATTR) is buffer
    finally:
        for pc in (client, bot, other):
            await pc.close()


def packet(sequence_number: int) -> RtpPacket:
    """An audio RTP packet as the receiver hands it to the buffer (payload already depacketized)."""
    rtp = RtpPacket(payload_type=111, sequence_number=sequence_number, timestamp=960 * sequence_number)
    rtp._data = bytes([sequence_number])  # type: ignore[attr-defined]
    return rtp


def released(buffer: JitterBuffer, sequence_numbers: list[int]) -> list[int | None]:
    """For each packet added, which packet's frame the buffer handed on (None: nothing yet)."""
    out: list[int | None] = []
    for number in sequence_numbers:
        _, frame = buffer.add(packet(number))
        out.append(None if frame is None else frame.data[0])
    return out


def test_prefetch_zero_hands_each_audio_packet_on_as_it_arrives() -> None:
    buffer = BotAudioJitterBuffer(capacity=AIORTC_AUDIO_CAPACITY, prefetch=0)
    assert released(buffer, [10, 11, 12]) == [10, 11, 12]


def test_prefetch_zero_still_holds_packets_behind_a_gap_until_it_is_filled() -> None:
    buffer = BotAudioJitterBuffer(capacity=AIORTC_AUDIO_CAPACITY, prefetch=0)
    # 12 arrives before 11: it waits; 11 goes on arrival, then 12 with the next packet; a
    # duplicate of a packet already handed on is dropped.
    assert released(buffer, [10, 12, 11, 13, 11]) == [10, None, 11, 12, None]


def test_prefetch_one_keeps_aiortcs_release_on_the_next_packet() -> None:
    buffer = BotAudioJitterBuffer(capacity=AIORTC_AUDIO_CAPACITY, prefetch=1)
    assert released(buffer, [10, 11, 12]) == [None, 10, 11]


def test_the_catalogues_bound_is_aiortcs_capacity() -> None:
    """VOICEFLEET_AUDIO_JITTER_PREFETCH's maximum, written in the catalogue, is the last slot aiortc has."""
    assert by_name()["VOICEFLEET_AUDIO_JITTER_PREFETCH"].maximum == AIORTC_AUDIO_CAPACITY - 1
