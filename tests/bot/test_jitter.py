"""The bot's inbound audio jitter buffer (bot/jitter.py): which receivers get it, and the env knob."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer

from bot.jitter import AIORTC_AUDIO_CAPACITY, BotAudioJitterBuffer, audio_prefetch, install

ATTR = "_RTCRtpReceiver__jitter_buffer"


def test_prefetch_defaults_to_one_and_reads_the_environment() -> None:
    assert audio_prefetch({}) == 1
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
