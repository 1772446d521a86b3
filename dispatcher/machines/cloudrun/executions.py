"""What a Cloud Run execution says about its session, read from the Admin API v2 `Execution`.

An execution cannot be named or labelled per run: `jobs.run` takes only container overrides
(args, env), `taskCount` and `timeout`, and names the execution itself (`<job>-<suffix>`). So the
session travels in the execution's env overrides, which the execution reports back in its
`template` ("the template used to create tasks for this execution"): `VOICEFLEET_SESSION_ID`,
and three values of the provider's own, the body's fingerprint, the session's transport and its
release, so any replica reads the session's machine from the provider alone. `executions.list` has no filter, so
a session no replica remembers is found by reading the job's executions (docs/providers.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botchannel.contract import (
    CHANNEL_TOKEN_VARIABLE,
    EXECUTION_NONCE_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
)
from dispatcher.machines.base import Machine, MachineState
from dispatcher.machines.bot_environment import SESSION_ID, SESSION_VARIABLES

BODY_DIGEST = "VOICEFLEET_BODY_DIGEST"  # the client's body fingerprint (no secret), for Idempotency-Key conflicts
SESSION_TRANSPORT = "VOICEFLEET_SESSION_TRANSPORT"  # "daily", "webrtc" or "websocket", as LaunchSpec.transport
RELEASE = "VOICEFLEET_RELEASE"  # the session's (or idle bot's) release, as LaunchSpec.release
IDLE_BOT = "VOICEFLEET_IDLE_BOT"  # a reserve execution's bot id (cloudrun/reserve.py)
EXECUTION_NONCE = EXECUTION_NONCE_VARIABLE  # this execution's own, which its bot's hello carries (identity.py)
# Every variable a run's overrides may set: the dispatcher's own and no other. A run's env is the
# task's, and a PYTHON*, BROWSER or LD_* one there would run code as the bot's service account.
OVERRIDE_NAMES = frozenset({*SESSION_VARIABLES, CHANNEL_TOKEN_VARIABLE, IDENTITY_VARIABLE, BODY_DIGEST,
                            SESSION_TRANSPORT, RELEASE, IDLE_BOT, EXECUTION_NONCE, MACHINE_ID_VARIABLE,
                            IMAGE_VARIABLE})


def execution_env(raw: Mapping[str, Any]) -> dict[str, str]:
    """The execution's env as its tasks got it: the job's, merged with the run's overrides."""
    template = raw.get("template") or {}
    env: dict[str, str] = {}
    for container in template.get("containers") or []:
        for item in container.get("env") or []:
            if isinstance(item, Mapping) and "value" in item:
                env[str(item.get("name"))] = str(item["value"])
    return env


def _epoch(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def to_machine(raw: Mapping[str, Any], session_id: str | None = None, exit_detail: str | None = None) -> Machine:
    """The execution as a session's machine. Counts are proto3 JSON: a zero is left out."""
    env = execution_env(raw)
    detail = None
    if raw.get("completionTime") or raw.get("cancelledCount") or raw.get("failedCount"):
        if raw.get("failedCount"):
            state, detail = MachineState.FAILED, exit_detail or "task failed"
        else:
            state = MachineState.ENDED
            detail = "execution cancelled" if raw.get("cancelledCount") else "execution completed"
    elif raw.get("runningCount") or raw.get("startTime"):
        state = MachineState.STARTED
    else:
        state = MachineState.STARTING
    return Machine(
        session_id=session_id if session_id is not None else env.get(SESSION_ID, ""),
        machine_id=str(raw.get("name", "")).rsplit("/", 1)[-1],
        state=state,
        created_at=_epoch(raw.get("createTime")),
        body_digest=env.get(BODY_DIGEST),
        detail=detail,
        transport=env.get(SESSION_TRANSPORT) or None,
        release=env.get(RELEASE) or None,
    )
