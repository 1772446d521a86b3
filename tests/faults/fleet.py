"""The fault tests' cloud providers: each provider's harness (tests/dispatcher/machines/harness.py) built
with short, but not tight, client timeouts.

No test here races a sleep: a hanging call is a *held* one (the fakes' `hold` knob), which the
client's own timeout gives up on and the test releases when it wants the late answer to land.
So the timeouts only have to be short enough to keep the tests quick, and long enough that a
call nobody holds always finishes in time on a loaded machine: every fake and moto share this
process (and its GIL) with the test, and a moto call took over 0.2 s with one core busy.
"""

from __future__ import annotations

from tests.dispatcher.machines.harness import Harness, settle

__all__ = ["CALL_TIMEOUT", "DEADLINE", "Fleet", "fault_env", "settle"]

Fleet = Harness

# Per HTTP call. A held call costs this much per attempt.
CALL_TIMEOUT = 1.0


def deadline_for(timeout: float) -> float:
    """All attempts of one operation: room for one timed-out attempt, the backoff (≤ 0.5 s at
    the first retry for every provider) and a second, successful attempt."""
    return 2 * timeout + 0.5


DEADLINE = deadline_for(CALL_TIMEOUT)


def fault_env(name: str) -> dict[str, str]:
    timeout, deadline = str(CALL_TIMEOUT), str(deadline_for(CALL_TIMEOUT))
    return {
        "fly": {
            "FLY_TIMEOUT_SECONDS": timeout,
            "FLY_RETRY_DEADLINE_SECONDS": deadline,
            # The tests look machines up often; Fly's 1/s list limit is the load bench's subject.
            "FLY_LIST_RATE": "100",
            "FLY_LIST_BURST": "100",
        },
        "gce": {"GCE_TIMEOUT_SECONDS": timeout, "GCE_RETRY_DEADLINE_SECONDS": deadline},
        "ecs": {
            "ECS_POLL_SECONDS": "0.05",
            "ECS_CONNECT_TIMEOUT_SECONDS": timeout,
            "ECS_READ_TIMEOUT_SECONDS": timeout,
            "ECS_RETRY_DEADLINE_SECONDS": deadline,
        },
        "modal": {"MODAL_TIMEOUT_SECONDS": timeout, "MODAL_RETRY_DEADLINE_SECONDS": deadline,
                  "MODAL_POLL_SECONDS": "0.05"},
        "daily": {"DAILY_TIMEOUT_SECONDS": timeout, "DAILY_RETRY_DEADLINE_SECONDS": deadline},
    }[name]
