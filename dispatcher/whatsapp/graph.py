"""The Graph API's calling endpoint, `POST /{phone_number_id}/calls`, with the business's token:

    {"messaging_product": "whatsapp", "call_id": "wacid.…", "action": "pre_accept" | "accept",
     "session": {"sdp_type": "answer", "sdp": "<RFC 8866 SDP>"}}     → {"success": true}
    {"messaging_product": "whatsapp", "call_id": "wacid.…", "action": "reject" | "terminate"}

Each request has a timeout and is retried with backoff on 429 and 5xx only (and on no answer at all);
anything else is Meta's refusal, raised as `GraphRefused` with Meta's error code and message (the
token is never in a message). Meta's errors: `{"error": {"message", "type", "code", "fbtrace_id"}}`."""

from __future__ import annotations

from typing import Any, Literal

from dispatcher.outbound.http_client import HttpClient
from dispatcher.outbound.retry import Backoff, Transient, send

REQUEST_SECONDS = 5.0
# Three tries within 10 s: a caller is ringing meanwhile, and Meta ends an unanswered call by itself.
BACKOFF = Backoff(attempts=3, base=0.3, cap=2.0, deadline=10.0)
Action = Literal["pre_accept", "accept", "reject", "terminate"]


class GraphRefused(Exception):
    """Meta did not do it: `status` (HTTP; 0 when Meta never answered), Meta's `code` and message."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"WhatsApp {'HTTP ' + str(status) if status else 'unreachable'}"
                         f"{f' (code {code})' if code is not None else ''}: {message}")
        self.status, self.code = status, code


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
        try:
            answer = await send(self._client, "POST", f"/{number}/calls", backoff=BACKOFF, timeout=REQUEST_SECONDS,
                                json=body)
        except Transient as exc:
            raise GraphRefused(exc.status or 0, None, f"{action} not taken after retries ({exc})") from None
        try:
            data = answer.json()
        except ValueError:
            data = None
        if 200 <= answer.status_code < 300 and isinstance(data, dict) and data.get("success") is True:
            return
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            raise GraphRefused(answer.status_code, code if isinstance(code, int) else None,
                               str(error.get("message"))[:300])
        raise GraphRefused(answer.status_code, None, f"{action} answered without success")

    async def aclose(self) -> None:
        await self._client.aclose()
