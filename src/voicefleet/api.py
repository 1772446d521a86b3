"""The dispatcher's HTTP API as the command calls it: the same routes and credential every client
uses (docs/http-api.md), one request per call, its answer's JSON or a failure that says what to do.

Only a connection that was never made is retried (twice, 0 s then 0.5 s apart: httpcore's backoff):
nothing reached the dispatcher, so even a rollback is safe to send again. An answer that did not come
in time is not retried, since the change may have been made."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from voicefleet.errors import Refused, Unreachable
from voicefleet.options import target_of
from voicefleet.settings import ADMIN_KEY_VARIABLE, API_KEY_VARIABLE, URL_VARIABLE, Target

if TYPE_CHECKING:
    import httpx

CONNECT_RETRIES = 2
ADMIN_KEYS = "the dispatcher's DISPATCHER_ADMIN_KEYS"
API_KEYS = "the dispatcher's DISPATCHER_API_KEYS (the key that started the session, or another of its name)"
# What to do about a refusal, by its `error.code`, where the dispatcher's message does not say it.
NEXT_STEP = {
    "admin_key_required": f"{ADMIN_KEY_VARIABLE} holds a client API key: set it to one of {ADMIN_KEYS}",
    "unknown_release": "`voicefleet releases` lists the releases this dispatcher has",
}


def _httpx() -> ModuleType:
    """httpx, imported when a command first calls the dispatcher (`--help` never does). Without its
    own command line: `import httpx` imports httpx._main (rich, pygments: most of a second) when they
    are installed, and this command never runs it; a None in sys.modules makes that import fail,
    which httpx's __init__ expects (its stand-in `main` says how to install httpx's CLI)."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx


def path(*segments: str) -> str:
    """A route from its segments, each quoted whole: a name never reaches another route."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def call(method: str, route: str, body: dict[str, Any] | None = None,
         params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to the dispatcher the running command points at (--url, --timeout, the admin key)."""
    with Api(target_of(click.get_current_context())) as api:
        return api.call(method, route, body, params)


class Api:
    def __init__(self, target: Target, *, client: bool = False) -> None:
        """`client`: call with the client's key (VOICEFLEET_API_KEY), not the admin's."""
        self.target = target
        self._key = target.api_key if client else target.admin_key
        self._variable, self._keys = (API_KEY_VARIABLE, API_KEYS) if client else (ADMIN_KEY_VARIABLE, ADMIN_KEYS)
        headers = {"Accept": "application/json", "User-Agent": "voicefleet-cli"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key}"
        http = _httpx()
        self._client: httpx.Client = http.Client(base_url=target.url, headers=headers, timeout=target.timeout,
                                                 transport=http.HTTPTransport(retries=CONNECT_RETRIES))

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def call(self, method: str, route: str, body: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The answer's JSON object; Refused for any other answer, Unreachable when none came."""
        answer = self._answer(method, route, body, params, headers)
        body = _json_of(answer)
        if not isinstance(body, dict):  # every answer of the dispatcher's is a JSON object
            raise Refused(answer.status_code, "not_a_dispatcher", f"{self.target.url + route} answered with no "
                          f"JSON object", f"is {self.target.url} a voicefleet dispatcher? Point the command at "
                          f"one with --url or {URL_VARIABLE}")
        return body

    def text(self, route: str, params: dict[str, Any] | None = None) -> str:
        """A GET's answer as text (a CSV the dispatcher writes); failures as `call`."""
        return self._answer("GET", route, None, params).text

    def send(self, method: str, route: str) -> int:
        """The status of a success that has no body to read (a DELETE's 202 or 204); failures as `call`."""
        return self._answer(method, route, None, None).status_code

    def _answer(self, method: str, route: str, body: dict[str, Any] | None,
                params: dict[str, Any] | None, headers: dict[str, str] | None = None) -> httpx.Response:
        where = self.target.url + route
        http = _httpx()
        try:
            answer = self._client.request(method, route, json=body, params=params, headers=headers)
        except (http.ConnectError, http.ConnectTimeout) as error:  # nothing was sent
            raise Unreachable(f"cannot reach the dispatcher at {self.target.url} ({error or type(error).__name__}): "
                              f"start it (`uv run python -m dispatcher`) or point the command at it with "
                              f"--url or {URL_VARIABLE}") from None
        except http.TransportError as error:  # sent, and no answer came back (in time, or at all)
            what = type(error).__name__
            waited = (f" within {self.target.timeout:g} s ({what}; a slower dispatcher: --timeout SECONDS)"
                      if isinstance(error, http.TimeoutException) else f" ({error or what})")
            changed = "" if method == "GET" else "; the change may or may not have been made (`voicefleet releases`)"
            raise Unreachable(f"no answer from {where}{waited}{changed}") from None
        if answer.is_success:
            return answer
        raise self._refusal(answer, where)

    def _refusal(self, answer: httpx.Response, where: str) -> Refused:
        status = answer.status_code
        error = _error_of(answer)
        if answer.is_redirect:
            return Refused(status, "redirected", f"{where} redirects to {answer.headers.get('location', '?')}",
                           f"use that address: --url or {URL_VARIABLE}")
        if error is None:
            if status == 404:
                return Refused(status, "not_found", f"{where} is not a route of this dispatcher",
                               f"a dispatcher from before this command, or {self.target.url} is not one: "
                               f"update it, or point the command at one with --url or {URL_VARIABLE}")
            return Refused(status, "http_error", f"{where} answered HTTP {status} without an error body",
                           "the dispatcher's logs (or the proxy in front of it) say why")
        code, message = error
        hint = NEXT_STEP.get(code)
        if code == "admin_key_required" and self._key is not None and self._key == self.target.api_key:
            hint = (f"an admin's question: leave {API_KEY_VARIABLE} unset and set {ADMIN_KEY_VARIABLE} to one of "
                    f"{ADMIN_KEYS}")
        if status == 401 and code == "api_key_revoked":
            hint = (f"{self._variable} holds a revoked key: set it to a live one, which the deployment's admin "
                    "gives (`voicefleet keys create NAME --another` for the same name)")
        elif status == 401:
            hint = (f"{self._variable} is not set: set it to one of {self._keys}" if self._key is None
                    else f"set {self._variable} to one of {self._keys}")
        return Refused(status, code, message, hint)


def _json_of(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _error_of(answer: httpx.Response) -> tuple[str, str] | None:
    """`{"error": {"code", "message"}}`, the dispatcher's one error shape, or None for any other body."""
    body = _json_of(answer)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return error["code"], str(error.get("message", ""))
    return None
