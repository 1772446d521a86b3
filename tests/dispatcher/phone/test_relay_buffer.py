"""What a call keeps while its bot is starting: the carrier's first two messages always (the bot's
carrier detection reads them), then the newest frames up to the bound."""

from __future__ import annotations

from dispatcher.phone.relay import HANDSHAKE_FRAMES, MAX_BUFFERED_BYTES, CarrierBuffer


def text(n: int) -> dict[str, str]:
    return {"type": "websocket.receive", "text": str(n)}


def test_the_handshake_is_kept_and_the_oldest_audio_dropped_past_the_bound() -> None:
    buffer = CarrierBuffer(limit=3)
    for n in range(10):
        buffer.add(text(n))
    assert [m["text"] for m in buffer.drain()] == ["0", "1", "7", "8", "9"]
    assert buffer.dropped == 5
    assert buffer.drain() == []


def test_under_the_bound_nothing_is_dropped() -> None:
    buffer = CarrierBuffer(limit=500)
    for n in range(100):
        buffer.add(text(n))
    assert [m["text"] for m in buffer.drain()] == [str(n) for n in range(100)]
    assert buffer.dropped == 0


def frame(n: int, size: int) -> dict[str, object]:
    return {"type": "websocket.receive", "bytes": bytes([n]) * size}


def test_large_frames_are_bounded_by_bytes_too_oldest_dropped_handshake_kept_and_counted() -> None:
    buffer = CarrierBuffer(limit=500, byte_limit=2500)
    buffer.add(frame(0, 900))  # the handshake is kept whatever its size, and its bytes count: all of
    buffer.add(frame(1, 900))  # it goes to the bot at once when it attaches
    for n in range(2, 12):
        buffer.add(frame(n, 300))
    assert buffer.bytes == 1800 + 600
    assert [m["bytes"][0] for m in buffer.drain()] == [0, 1, 10, 11]
    assert buffer.dropped == 8 and buffer.bytes == 0


def test_text_frames_are_held_by_their_utf8_bytes() -> None:
    buffer = CarrierBuffer(limit=500, byte_limit=1000)
    for _ in range(HANDSHAKE_FRAMES + 10):
        buffer.add({"type": "websocket.receive", "text": "𝄞" * 50})  # 50 characters, 200 bytes
    assert buffer.bytes == 1000 and len(buffer.media) == 3


def test_the_default_byte_bound_keeps_10_s_of_twilio_audio_and_caps_large_frames() -> None:
    buffer = CarrierBuffer()
    twilio_frame = '{"event":"media","media":{"payload":"' + "A" * 216 + '"}}'  # 20 ms of μ-law, base64
    for _ in range(HANDSHAKE_FRAMES + 500):
        buffer.add({"type": "websocket.receive", "text": twilio_frame})
    assert buffer.dropped == 0
    for n in range(500):
        buffer.add(frame(n % 256, 64 * 1024))
    assert buffer.bytes <= MAX_BUFFERED_BYTES < 500 * 64 * 1024
    assert len(buffer.media) == (MAX_BUFFERED_BYTES - 2 * len(twilio_frame)) // (64 * 1024)
