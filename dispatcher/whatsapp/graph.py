"""The Graph API's calling endpoint, `POST /{phone_number_id}/calls`, with the business's token:

    {"messaging_product": "whatsapp", "call_id": "wacid.…", "action": "pre_accept" | "accept",
     "session": {"sdp_type": "answer", "sdp": "<RFC 8866 SDP>"}}     → {"success": true}
    {"messaging_product": "whatsapp", "call_id": "wacid.…", "action": "reject" | "terminate"}

Each request has a timeout and bounded retries with backoff. `pre_accept` and `accept` are sent again
only when Meta cannot have done them: a 429 (its throughput limit), or a connection that never opened. A
5xx or an answer that never came may follow an answer Meta took, so it is raised as `GraphRefused` with
`maybe_done`, for the call's handling to decide (calls.py). `reject` and `terminate` are also tried again
on those (a repeat of one Meta did is refused, which changes nothing). Anything else is Meta's refusal,
with Meta's error code and message (the token is never in a message). Meta's errors:
`{"error": {"message", "type", "code", "fbtrace_id"}}`."""

from __future__ import annotations

from typing import Any, Literal

from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.http_failure import never_connected
from dispatcher.outbound.retry import Backoff, Transient, retry_after_of, with_retries

REQUEST_SECONDS = 5.0
# Three tries within 10 s: a caller is ringing meanwhile, and Meta ends an unanswered call by itself.
BACKOFF = Backoff(attempts=3, base=0.3, cap=2.0, deadline=10.0)
Action = Literal["pre_accept", "accept", "reject", "terminate"]


class GraphRefused(Exception):
    """Meta did not do it, or may have (`maybe_done`: a 5xx, or no answer to a request it got): `status`
    (HTTP; 0 when Meta never answered), Meta's `code` and message."""

    def __init__(self, status: int, code: int | None, message: str, *, maybe_done: bool = False) -> None:
        super().__init__(f"WhatsApp {'HTTP ' + str(status) if status else 'unreachable'}"
                         f"{f' (code {code})' if code is not None else ''}: {message}")
        self.status, self.code, self.maybe_done = status, code, maybe_done

    @property
    def unanswered(self) -> bool:
        """Meta gave no answer of its own (unreachable, throttled or failing past the retries): not a refusal."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class GraphCalls:
    def __init__(self, graph_url: str, token: str, client: HttpClient | None = None) -> None:
        self._client = client or HttpClient(graph_url, timeout=REQUEST_SECONDS, follow_redirects=False,
                                            max_answer_bytes=65_536, headers={"Authorization": f"Bearer {token}"})

    async def answer(self, number: str, call_id: str, action: Literal["pre_accept", "accept"], sdp: str) -> None:
        await self._call(number, call_id, action, {"session": {"sdp_type": "answer", "sdp": sdp}})

    async def end(self, number: str, call_id: str, action: Literal["reject", "terminate"]) -> None:
        await self._call(number, call_id, action, {})

    async def _call(self, number: str, call_id: str, action: Action, more: dict[str, Any]) -> None:
        body = {"messaging_product": "whatsapp", "call_id": call_id, "action": action, **more}
        path = f"/{number}/calls"
        repeatable = action in ("reject", "terminate")

        async def once() -> HttpResponse:
            try:
                response = await self._client.request("POST", path, timeout=REQUEST_SECONDS, json=body)
            except HttpError as exc:
                if repeatable or never_connected(exc):  # never reached Meta
                    raise Transient(f"POST {path}: {exc}") from exc
                raise GraphRefused(0, None, f"{action}: no answer ({exc})", maybe_done=True) from None
            if response.status_code == 429:  # throttled: Meta did nothing
                raise Transient(f"POST {path}: HTTP 429", retry_after=retry_after_of(response.headers), status=429)
            if response.status_code >= 500:
                if repeatable:
                    raise Transient(f"POST {path}: HTTP {response.status_code}", status=response.status_code)
                raise _refusal(response, action, maybe_done=True)
            return response

        try:
            answer = await with_retries(once, BACKOFF)
        except Transient as exc:
            raise GraphRefused(exc.status or 0, None, f"{action} not taken after retries ({exc})") from None
        if 200 <= answer.status_code < 300 and _json(answer).get("success") is True:
            return
        raise _refusal(answer, action)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(answer: HttpResponse) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _refusal(answer: HttpResponse, action: Action, *, maybe_done: bool = False) -> GraphRefused:
    error = _json(answer).get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return GraphRefused(answer.status_code, code if isinstance(code, int) else None,
                            str(error.get("message"))[:300], maybe_done=maybe_done)
    return GraphRefused(answer.status_code, None, f"{action} answered without success", maybe_done=maybe_done)
