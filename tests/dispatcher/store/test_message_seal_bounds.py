"""The seal's bounds, at their edges: a secret's length, the clock window, what a body's encryption
hides and binds, and the memory of senders (dispatcher/store/message_seal.py)."""

from __future__ import annotations

import pytest

from dispatcher.store import message_seal
from dispatcher.store.message_seal import MIN_SECRET_CHARACTERS, WINDOW_SECONDS, MessageSeal
from tests.dispatcher.store.test_message_seal import SECRET, Clock, refused

CHANNEL = "{voicefleet}:media:r-a"


def test_a_secret_of_exactly_the_minimum_length_is_taken_one_shorter_refused() -> None:
    MessageSeal("s" * MIN_SECRET_CHARACTERS)
    with pytest.raises(ValueError):
        MessageSeal("s" * (MIN_SECRET_CHARACTERS - 1))


def test_a_message_exactly_the_window_away_still_opens() -> None:
    clock = Clock()
    sender, receiver = MessageSeal(SECRET, clock=clock), MessageSeal(SECRET, clock=clock)
    old = sender.seal(CHANNEL, b"old")
    clock.now += WINDOW_SECONDS  # as far behind as the window allows
    assert receiver.open(CHANNEL, "media", old) == b"old"
    ahead = sender.seal(CHANNEL, b"ahead")
    clock.now -= WINDOW_SECONDS  # the receiver now as far behind the sender as allowed
    assert receiver.open(CHANNEL, "media", ahead) == b"ahead"
    assert refused(receiver, "stale", "media") == 0


def test_a_concealed_body_is_hidden_opens_on_its_channel_only_and_never_twice_the_same() -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    body = b"a caller's voice, twenty milliseconds of it"
    concealed = sender.conceal(CHANNEL, body)
    assert body not in concealed and sender.conceal(CHANNEL, body) != concealed  # a fresh nonce each time
    assert receiver.reveal(CHANNEL, "media", concealed) == body
    assert receiver.reveal("{voicefleet}:media:r-b", "media", concealed) is None  # bound to its channel
    assert receiver.reveal(CHANNEL, "media", concealed[:-1] + bytes([concealed[-1] ^ 1])) is None  # changed
    assert MessageSeal("another-secret-" + "o" * 30).reveal(CHANNEL, "media", concealed) is None  # another key
    assert receiver.reveal(CHANNEL, "media", b"short") is None  # not even a nonce's length
    assert refused(receiver, "forged", "media") == 3


def test_a_sender_quiet_for_two_windows_is_forgotten_and_its_old_messages_are_stale() -> None:
    clock = Clock()
    quiet, talking = MessageSeal(SECRET, clock=clock), MessageSeal(SECRET, clock=clock)
    receiver = MessageSeal(SECRET, clock=clock)
    first = quiet.seal(CHANNEL, b"1")
    assert receiver.open(CHANNEL, "media", first) == b"1"
    clock.now += 2 * WINDOW_SECONDS + 1
    assert receiver.open(CHANNEL, "media", talking.seal(CHANNEL, b"x")) == b"x"  # a new sender: a sweep
    assert len(receiver._senders) == 1  # the quiet one's record went
    assert receiver.open(CHANNEL, "media", first) is None  # and its message is stale, not replayable
    assert refused(receiver, "stale", "media") == 1


def test_the_memory_of_senders_is_bounded_and_keeps_the_newest(monkeypatch) -> None:
    monkeypatch.setattr(message_seal, "MAX_SENDERS", 3)
    receiver = MessageSeal(SECRET)
    senders = [MessageSeal(SECRET) for _ in range(5)]
    for sender in senders:
        assert receiver.open(CHANNEL, "media", sender.seal(CHANNEL, b"hi")) == b"hi"
    assert list(receiver._senders) == [sender._sender for sender in senders[-3:]]  # the oldest two went
    last = senders[-1].seal(CHANNEL, b"again")
    assert receiver.open(CHANNEL, "media", last) == b"again"  # the newest is still known: in order, once
    assert receiver.open(CHANNEL, "media", last) is None


def test_after_messages_in_order_a_replay_of_any_earlier_one_is_refused() -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    sent = [sender.seal(CHANNEL, b"%d" % n) for n in range(6)]
    assert [receiver.open(CHANNEL, "media", m) for m in sent] == [b"%d" % n for n in range(6)]
    assert [receiver.open(CHANNEL, "media", m) for m in sent] == [None] * 6
    assert refused(receiver, "replayed", "media") == 6


def test_a_message_that_arrived_late_is_refused_when_replayed() -> None:
    sender, receiver = MessageSeal(SECRET), MessageSeal(SECRET)
    early, later = sender.seal(CHANNEL, b"early"), sender.seal(CHANNEL, b"later")
    assert receiver.open(CHANNEL, "media", later) == b"later"
    assert receiver.open(CHANNEL, "media", early) == b"early"  # behind the newest, once
    assert receiver.open(CHANNEL, "media", early) is None
    assert refused(receiver, "replayed", "media") == 1
