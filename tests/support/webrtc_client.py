"""The tests' headless aiortc caller is the load test's own (src/voicefleet/loadtest/webrtc.py, which says what
it does): one caller for `voicefleet loadtest`, the benchmarks and the tests.

    from tests.support.webrtc_client import WebRTCClient, OfferRejected

    async with WebRTCClient("http://127.0.0.1:8765/api/offer") as client:   # POST offer, ICE up
        result = await client.talk("tests/fixtures/speech16k.wav", listen_seconds=3.0)
    assert result.replied, result.summary()

Check that a reply is really the caller's audio with `tests.support.audio.echo_similarity(read_wav(wav),
result.reply_audio, result.reply_sample_rate)` (~0.9 for the parrot's echo, ~0 for noise/tones).
"""

from __future__ import annotations

from voicefleet.loadtest.webrtc import OfferRejected, PacedMic, Recording, TalkResult, WebRTCClient, post_json

__all__ = ["OfferRejected", "PacedMic", "Recording", "TalkResult", "WebRTCClient", "post_json"]
