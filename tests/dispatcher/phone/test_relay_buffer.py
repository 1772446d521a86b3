"""What a call keeps while its bot is starting: the carrier's first two messages always (the bot's
carrier detection reads them), then the newest frames up to the bound."""

from __future__ import annotations

from dispatcher.phone.relay import CarrierBuffer


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
