"""The edge's `GET /status` (docs/sip.md, "Is the edge up?"): what an operator needs to know it takes calls.

    up_since              epoch seconds the edge's process started
    version               its code (sipedge/code_version.py)
    ready                 its SIP stack is up (with workers: at least one worker's is)
    calls                 `in_progress`, `free` and `total` call slots, both directions together
    trunks                each trunk's `name` and `registration`: `not_registering` (no registrar), `registering`
                          (no answer yet), `registered`, `refused` with the registrar's `code` and `reason`
                          (PJSIP's own 408 when none answered), `failed` with PJSUA's `status` (its pj_status_t)
                          and `reason` (no REGISTER sent; the reason ends with what comes next: the edge asking
                          again, or the registrar to fix in its file), `unregistered` (stopping)
    refused_last_minute   INVITEs refused, strangers' requests ignored and answered calls never acknowledged
                          (sipedge/ack_wait.py) over the last 60 s (with workers, Kamailio's own refusals too:
                          sipedge/front_refusals.py)
    draining              it is stopping once its calls in flight end, refusing new ones (sipedge/drain.py); with
                          workers, the edge's front or any worker is
    workers               with several workers only: `total`, and `answering` the front's question

Built from what the edge keeps already (its sets of calls, the refusal counts, the registrations PJSUA
reported), on the event loop, with no PJSIP call: it never waits on the SIP thread or a call. No secret
and no caller's number is in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sipedge.code_version import code_version
from sipedge.config import Trunk
from sipedge.registrations import Registrations

if TYPE_CHECKING:
    from sipedge.edge import Edge


def edge_status(edge: Edge, up_since: float) -> dict[str, Any]:
    """One PJSIP process's: the edge's own, or one worker's (the front adds them up: `workers_status`)."""
    in_progress, total = edge.calls_in_flight(), edge.capacity
    return {
        "up_since": round(up_since, 3),
        "version": code_version(),
        "ready": edge.stack.started.is_set() and edge.stack.failed is None,
        "calls": {"in_progress": in_progress, "free": max(0, total - in_progress), "total": total},
        "trunks": trunk_states(edge.config.trunks, edge.stack.registrations),
        "refused_last_minute": edge.refusals.last_minute(),
        "draining": edge.draining,
    }


def trunk_states(trunks: Sequence[Trunk], registrations: Registrations | None) -> list[dict[str, Any]]:
    """Each trunk's registration: `registrations` None where nothing registers (several workers)."""
    states: list[dict[str, Any]] = []
    for trunk in trunks:
        if trunk.registrar is None or registrations is None:
            states.append({"name": trunk.name, "registration": "not_registering"})
            continue
        registration = registrations.of(trunk.name)
        state: dict[str, Any] = {"name": trunk.name, "registration": registration.state}
        if registration.code is not None:
            state |= {"code": registration.code, "reason": registration.reason}
        if registration.status is not None:
            state |= {"status": registration.status, "reason": registration.reason}
        states.append(state)
    return states


def workers_status(answers: Sequence[dict[str, Any] | None], worker_calls: int, trunks: Sequence[Trunk],
                   up_since: float, draining: bool = False) -> dict[str, Any]:
    """The edge with several workers, as its front counts it from each worker's own status (None: a worker that
    did not answer, whose slots are then neither free nor in progress); `draining`: the front's own drain. A trunk
    with a registrar needs one worker (sipedge/config.py), so none registers here."""
    answered = [answer for answer in answers if answer is not None]
    return {
        "up_since": round(up_since, 3),
        "version": code_version(),
        "ready": any(answer.get("ready") is True for answer in answered),
        "calls": {"in_progress": sum(_count(answer, "in_progress") for answer in answered),
                  "free": sum(_count(answer, "free") for answer in answered),
                  "total": len(answers) * worker_calls},
        "trunks": trunk_states(trunks, None),
        "refused_last_minute": sum(_whole(answer.get("refused_last_minute")) for answer in answered),
        "draining": draining or any(answer.get("draining") is True for answer in answered),
        "workers": {"total": len(answers), "answering": len(answered)},
    }


def _count(answer: dict[str, Any], name: str) -> int:
    calls = answer.get("calls")
    return _whole(calls.get(name)) if isinstance(calls, dict) else 0


def _whole(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
