"""A stand-in for the dispatcher's release smoke routes, in front of a real dispatcher, as the
contract writes them: `POST /releases/{name}/smoke` (admin key only: none → 401 `unauthorized`, a
client key → 403 `admin_key_required`; an unknown release → 422 `unknown_release`) starts a real
session pinned to the release (the real `POST /start`) and answers exactly that answer plus
`"smoke": true`; the session's offer goes to the real dispatcher (only with the key that asked);
`GET /releases` is the real body with each smoked release's `"smoke": {"status", "session_id",
"reason", "at"}`, judged as the dispatcher judges: from the bot's own reports in the session's
timeline (`first_audio` then a clean `ended`: passed; `error`, `failed` or an `ended` without first
audio: failed; else running)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

import httpx

ADMIN_KEY = "vf-admin-smoke-8e1d4c7b2a90"
CLIENT_KEY = "vf-client-smoke-3b6f0e9d1c57"  # the stand-in's own key at the real dispatcher


class SmokeRoutes:
    def __init__(self, dispatcher_url: str) -> None:
        self.real = httpx.Client(base_url=dispatcher_url, timeout=60,
                                 headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        self.smokes: dict[str, dict[str, Any]] = {}  # release → its smoke record

    def judged(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["status"] in ("passed", "failed"):
            return record
        events = self.real.get(f"/sessions/{record['session_id']}/timeline").json().get("events", [])
        seen = {e["event"]: e for e in events}
        if "failed" in seen or "error" in seen:
            cause = seen.get("failed") or seen["error"]
            record.update(status="failed", reason=str(cause.get("message") or cause.get("detail")), at=time.time())
        elif "ended" in seen:
            ended = seen["ended"]
            clean = "first_audio" in seen and ended.get("exit_code") in (None, 0)
            record.update(status="passed" if clean else "failed", at=time.time(),
                          reason=None if clean else f"ended {ended.get('reason')} before the caller heard the bot")
        return record

    def answer(self, method: str, parts: list[str], authorization: str | None, body: bytes) -> tuple[int, Any]:
        admin = authorization == f"Bearer {ADMIN_KEY}"
        if method == "GET" and parts == ["releases"]:
            if not admin:
                return _refusal(authorization)
            view = self.real.get("/releases", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
            for release in view["releases"]:
                if release["name"] in self.smokes:
                    release["smoke"] = self.judged(self.smokes[release["name"]])
            return 200, view
        if method == "POST" and len(parts) == 3 and parts[0] == "releases" and parts[2] == "smoke":
            if not admin:
                return _refusal(authorization)
            started = self.real.post("/start", json={"release": parts[1]})
            if started.status_code not in (200, 201):
                return started.status_code, started.json()
            answer = started.json()
            self.smokes[parts[1]] = {"status": "running", "session_id": answer["session_id"], "reason": None,
                                     "at": time.time()}
            return 201, {**answer, "smoke": True}
        if method == "POST" and len(parts) == 4 and parts[0] == "sessions" and parts[2:] == ["api", "offer"]:
            if not admin:  # the smoke session is the admin key's: no other key reaches it
                return 404, {"error": {"code": "not_found", "message": f"no session {parts[1]}"}, "detail": None}
            offered = self.real.post(f"/sessions/{parts[1]}/api/offer", content=body,
                                     headers={"Content-Type": "application/json"})
            return offered.status_code, offered.json()
        return 404, {"error": {"code": "not_found", "message": "not a route of this stand-in"}, "detail": None}


def _refusal(authorization: str | None) -> tuple[int, Any]:
    if authorization is None:
        return 401, {"error": {"code": "unauthorized", "message": "an admin key is required"}, "detail": None}
    return 403, {"error": {"code": "admin_key_required", "message": "a client API key cannot change releases: "
                           "use one of DISPATCHER_ADMIN_KEYS"}, "detail": None}


def handler(routes: SmokeRoutes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
            status, answer = routes.answer(self.command, parts, self.headers.get("Authorization"), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler
