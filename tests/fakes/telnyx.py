"""A fake of Telnyx's TeXML Calls resource, the two requests a transfer makes
(https://developers.telnyx.com/api-reference/texml-rest-commands/update-call):

    POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}   update a live call (form-encoded, CamelCase)
    GET  /v2/texml/Accounts/{account_sid}/Calls/{call_sid}   read a call

Twilio's resource in shape, so the rules are FakeTwilio's with Telnyx's own: `Authorization: Bearer
{API key}` (401, error 10009); a form body of the update's documented fields only (`Status`, `Url`,
`Method`, `FallbackUrl`, `FallbackMethod`, `StatusCallback`, `StatusCallbackMethod`, `Texml`), anything
else 422 (10015); an unknown call (or another account's) 404 (10005); new TeXML for a call that is no
longer in progress 422 (90018, "Call has already ended"); a `Status` other than `completed` (the one value
documented: "Setting the status to completed ends the call") 422; past `max_per_second`, 429 (10011). Errors
have Telnyx's body `{"errors": [{"code", "title", "detail"}]}`, the code a string
(https://developers.telnyx.com/development/api-fundamentals/api-errors).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.twilio import FakeCall, FakeTwilio

ACCOUNT_SID = "f5586561-8ff0-4291-a51b-c7dfe4139ff9"
API_KEY = "KEY0test-telnyx-api-key"
UPDATE_FIELDS = frozenset({"Status", "Url", "Method", "FallbackUrl", "FallbackMethod", "StatusCallback",
                           "StatusCallbackMethod", "Texml"})
TITLES = {"10005": "Resource not found", "10009": "Authentication failed", "10011": "Too many requests",
          "10015": "Bad Request", "90018": "Call has already ended"}


def telnyx_error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "title": TITLES.get(code, "Error"), "detail": detail}]},
                        status_code=status)


class FakeTelnyx(FakeTwilio):
    error_body = staticmethod(lambda status: {"errors": [{
        "code": "10011" if status == 429 else "10007", "title": "Too many requests" if status == 429 else "injected"}]})
    update_fields = UPDATE_FIELDS
    document = "Texml"
    update_statuses = ("completed",)
    refusals = {"throttled": (429, 10011), "unauthenticated": (401, 10009), "no_call": (404, 10005),
                "invalid": (422, 10015), "not_in_progress": (422, 90018)}

    def __init__(self, account_sid: str = ACCOUNT_SID, api_key: str = API_KEY, max_per_second: float = 10.0) -> None:
        super().__init__(account_sid=account_sid, max_per_second=max_per_second)
        self.api_key = api_key

    def refuse(self, kind: str, message: str) -> JSONResponse:
        status, code = self.refusals[kind]
        return telnyx_error(status, str(code), message)

    def env(self) -> dict[str, str]:
        """What points the dispatcher's Telnyx transfers at this fake."""
        return {"TELNYX_TRANSFER_API_KEY": self.api_key, "TELNYX_API_URL": self.url}

    def routes(self) -> list[Route]:
        return [Route("/v2/texml/Accounts/{account}/Calls/{sid}", self._call, methods=["GET", "POST"])]

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token == self.api_key

    def _resource(self, call: FakeCall) -> dict[str, Any]:
        return {"sid": call.sid, "account_sid": self.account_sid, "status": call.status, "direction": "inbound",
                "from": call.sender, "to": call.to,
                "uri": f"/v2/texml/Accounts/{self.account_sid}/Calls/{call.sid}.json"}
