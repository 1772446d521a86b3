"""The machine credential itself (dispatcher/bot_credentials.py): what verifies, and what does not."""

from __future__ import annotations

import pytest

from dispatcher.channel.credentials import BotCredentials, BotGrant, bearer

SECRET = "deployment-secret-" + "x" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_credential_opens_what_it_was_issued_for_until_it_expires() -> None:
    clock = Clock()
    credentials = BotCredentials(SECRET, clock)
    issued = credentials.issue("idle", "rsv-0a1b", 60)
    assert credentials.verify(issued) == BotGrant("idle", "rsv-0a1b", 1_000_060)
    assert credentials.verify(credentials.issue("session", "s" * 24, 60)) == BotGrant("session", "s" * 24, 1_000_060)
    for subject in ("r", "rsv-abc", "rsv-0a1b2c3d4"):  # every base64 padding length
        assert credentials.verify(credentials.issue("idle", subject, 60)) == BotGrant("idle", subject, 1_000_060)
    clock.now = 1_000_059.5
    assert credentials.verify(issued) is not None
    clock.now = 1_000_060
    assert credentials.verify(issued) is None  # expired at its expiry, not a second later


def test_another_deployments_or_an_altered_credential_opens_nothing() -> None:
    credentials = BotCredentials(SECRET, Clock())
    issued = credentials.issue("idle", "rsv-1", 60)
    prefix, kind, subject, expiry, tag = issued.split(".")
    other = BotCredentials("another-" + SECRET, Clock()).issue("idle", "rsv-1", 60)
    forged_subject = credentials.issue("idle", "rsv-2", 60).split(".")[2]
    for presented in (
        other,
        ".".join((prefix, "session", subject, expiry, tag)),  # the same subject as another kind
        ".".join((prefix, kind, forged_subject, expiry, tag)),
        ".".join((prefix, kind, subject, str(int(expiry) + 1), tag)),
        ".".join((prefix, kind, subject, expiry, tag[:-1] + ("A" if tag[-1] != "A" else "B"))),
        ".".join(("vfb2", kind, subject, expiry, tag)),
        ".".join((prefix, kind, subject, "9" * 13, tag)),
        ".".join((prefix, kind, subject, "-1", tag)),
        issued + ".x",
        issued.rsplit(".", 1)[0],
        "",
        SECRET,
    ):
        assert credentials.verify(presented) is None, presented


def test_expiries_of_twelve_digits_verify_and_longer_ones_never_do() -> None:
    clock = Clock()
    credentials = BotCredentials(SECRET, clock)
    clock.now = 999_999_999_000.0  # the expiry has 12 digits
    assert credentials.verify(credentials.issue("idle", "rsv-1", 60)) is not None
    clock.now = 9_999_999_999_000.0  # 13 digits: refused, however genuine its tag
    assert credentials.verify(credentials.issue("idle", "rsv-1", 60)) is None


def test_a_grant_cannot_be_changed() -> None:
    credentials = BotCredentials(SECRET, Clock())
    grant = credentials.verify(credentials.issue("idle", "rsv-1", 60))
    assert grant is not None
    with pytest.raises(AttributeError):
        grant.subject = "rsv-2"  # type: ignore[misc]


@pytest.mark.parametrize("subject", ["", "x" * 129])
def test_nothing_is_issued_for_an_empty_or_oversized_subject(subject: str) -> None:
    with pytest.raises(ValueError):
        BotCredentials(SECRET).issue("idle", subject, 60)


def test_a_subject_of_the_longest_size_is_issued() -> None:
    credentials = BotCredentials(SECRET)
    assert credentials.verify(credentials.issue("session", "x" * 128, 60)) is not None


@pytest.mark.parametrize(
    ("header", "credential"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer ", None), (None, None), ("", None)],
)
def test_the_bearer_credential_of_a_header(header: str | None, credential: str | None) -> None:
    assert bearer(header) == credential
