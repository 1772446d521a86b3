"""Calls to Modal through the real `modal` client (its `.aio` API), each with a deadline, and Modal's
errors as `MachinesError`s.

The client retries UNAVAILABLE, INTERNAL, UNKNOWN, CANCELLED and DEADLINE_EXCEEDED itself (3 times,
0.1/0.2/0.4 s: modal/_utils/grpc_utils.py), so those are not retried again here: after the client's
attempts they are `modal_unavailable`. What the client does not retry is retried here with backoff
within `MODAL_RETRY_DEADLINE_SECONDS`: RESOURCE_EXHAUSTED (a concurrency cap or a rate limit; then
`modal_throttled` with a `retry_after`), and an attempt that got no answer within
`MODAL_TIMEOUT_SECONDS` (the client puts no deadline on a create: a hung call would hang the start;
then `modal_unavailable`). A retried create is safe: its Sandbox's name makes a second one
ALREADY_EXISTS.

A RESOURCE_EXHAUSTED that carries Modal's retry hint (an `RPCRetryPolicy`) the client would wait out
and send again by itself, with no limit (`max_throttle_wait`, default none), inside the call: the
dispatcher would see a call that hangs, and its give-up cancels that loop only when the cancellation
reaches the client's own event loop thread (synchronicity drops a cancellation that finds the call not
yet scheduled there within 1 s, on a loaded host): a throttled create could then be sent after the
start was refused, and make a Sandbox nobody watches. So the client is told never to wait out a hint
(`max_throttle_wait` 0: it raises the throttle at once), and the hint is this module's backoff delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import modal
import modal.exception as modal_errors
from modal.config import config as modal_config
from modal_proto import api_pb2

from dispatcher.machines.base import MachinesError
from dispatcher.machines.modal.settings import ModalSettings
from dispatcher.outbound.provider_errors import refusal
from dispatcher.outbound.retry import Backoff, Transient, with_retries

T = TypeVar("T")
THROTTLED_RETRY_AFTER = 5.0


def open_client(settings: ModalSettings) -> modal.Client:
    """A client for this deployment's workspace and server (the constructor `from_credentials` uses,
    with the server named by the settings rather than the process's `MODAL_SERVER_URL`): the
    connection opens on the first call. Throttles come back to the caller, never waited out inside a
    call (the module's docstring); the client reads that setting process-wide, at each retry."""
    modal_config.override_locally("max_throttle_wait", "0")
    return modal.Client(settings.server_url, api_pb2.CLIENT_TYPE_CLIENT, (settings.token_id, settings.token_secret))


def retry_hint(exc: modal_errors.Error) -> float | None:
    """The seconds Modal asked a throttled call to wait (its `RPCRetryPolicy` detail), None without one."""
    details = getattr(exc, "_grpc_details", None) or ()
    return next((max(d.retry_after_secs, 0.1) for d in details if isinstance(d, api_pb2.RPCRetryPolicy)), None)


class ModalCalls:
    def __init__(self, settings: ModalSettings) -> None:
        self.settings = settings
        self.backoff = Backoff(attempts=5, base=0.5, cap=4.0, deadline=settings.retry_deadline)

    async def once(self, what: str, call: Callable[[], Awaitable[T]], passed: tuple[type[Exception], ...] = ()) -> T:
        """One call (the client's own retries inside), refusals and give-ups as `MachinesError`s;
        `passed` (NotFoundError, AlreadyExistsError) reach the caller, which reads them."""
        try:
            return await asyncio.wait_for(call(), self.settings.timeout)
        except passed:
            raise
        except (modal_errors.NotFoundError, modal_errors.AlreadyExistsError) as exc:
            raise refusal(MachinesError, "modal", 404, f"Modal refused to {what}: {exc}") from None
        except modal_errors.ResourceExhaustedError as exc:
            # Modal's hint, when it gave one, is the next try's delay; without one, the backoff's own
            # delays, then the caller is told THROTTLED_RETRY_AFTER.
            raise Transient(f"modal: {what}: {exc}", status=429, retry_after=retry_hint(exc)) from exc
        except modal_errors.AuthError as exc:
            raise refusal(MachinesError, "modal", 401, f"Modal refused the token to {what}: {exc}") from None
        except modal_errors.PermissionDeniedError as exc:
            raise refusal(MachinesError, "modal", 403, f"Modal denied {what}: {exc}") from None
        except (modal_errors.InvalidError, modal_errors.ConflictError) as exc:
            raise refusal(MachinesError, "modal", 400, f"Modal refused to {what}: {exc}") from None
        except TimeoutError as exc:  # asyncio's, from wait_for: this attempt's deadline
            raise Transient(f"modal: {what}: no answer within {self.settings.timeout:g}s") from exc
        except (modal_errors.Error, OSError) as exc:  # after the client's own retries
            raise MachinesError("modal_unavailable", f"modal: {what}: {type(exc).__name__}", retry_after=1.0) from None

    async def call(self, what: str, call: Callable[[], Awaitable[T]], passed: tuple[type[Exception], ...] = ()) -> T:
        """`once`, with RESOURCE_EXHAUSTED and unanswered attempts retried within the backoff's attempts
        and deadline. Throttled only when every try was: a try that got no answer may still be served
        (a create: its Sandbox made late), so its give-up is `modal_unavailable`, reconciled as such."""
        try:
            return await with_retries(lambda: self.once(what, call, passed), self.backoff)
        except Transient as exc:
            if exc.throttled:
                raise MachinesError("modal_throttled", str(exc),
                                    retry_after=max(exc.retry_after or 0.0, THROTTLED_RETRY_AFTER)) from None
            raise MachinesError("modal_unavailable", exc.account(), retry_after=1.0) from None
