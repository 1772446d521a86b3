"""Two dispatcher replicas in one test process share its event loop with each other, the carrier's fake and the
test. On a busy host that loop gets a fraction of a core: a store reply waits for it, and a warm transfer's
waiter renews its mark of waiting seconds late (5.6 s apart at load 12, where one replica alone renews it
every 0.2 s). The bounds made for a replica on its own (`REDIS_TIMEOUT_SECONDS`, the waiter's mark) are given
the test's whole wait here; what each decides once it lapses is tested on its own
(tests/dispatcher/phone/test_twilio_warm.py, tests/dispatcher/channel/test_replicas.py)."""

from __future__ import annotations

from dispatcher.phone.twilio_warm import TwilioWarm

STORE = {"REDIS_TIMEOUT_SECONDS": "30"}
MARK_SECONDS = 60.0  # past the tests' whole wait (tests/dispatcher/phone/test_twilio_warm.py WAIT)


def waiting_outlasts_the_test(warm: TwilioWarm | None) -> None:
    """The replica's warm waiter keeps its mark MARK_SECONDS a poll."""
    assert warm is not None
    warm._waiting = MARK_SECONDS  # noqa: SLF001 (the waiter's bound, as TwilioWarm's `waiting_seconds` sets it)
