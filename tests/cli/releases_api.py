"""A stand-in for the dispatcher's releases routes, as the contract writes them (docs/http-api.md):
the admin credential (no bearer → 401 `unauthorized`, a client key → 403 `admin_key_required`),
the error shape `{"error": {"code", "message"}, "detail"}`, the 422s and the 409, and every change
answering with the new `GET /releases` body. It is no more lenient than the dispatcher: a body with
other fields than `weight` is refused, and so is a weight that is not a whole percent."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ADMIN_KEY = "vf-admin-4d1f9c2e8b7a6053"
CLIENT_KEY = "vf-client-0a9b8c7d6e5f4321"


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Releases:
    names: list[str] = field(default_factory=lambda: ["r-old", "r-new"])
    weights: dict[str, int] = field(default_factory=lambda: {"r-old": 90, "r-new": 10})
    stable: str = "r-old"
    health: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "r-old": {"state": "healthy", "reason": None},
        "r-new": {"state": "watching", "reason": "12 sessions of the 50 it needs"}})
    smoke: dict[str, dict[str, Any]] = field(default_factory=lambda: {  # as dispatcher/releases/smoke.py views it
        "r-old": {"status": "pending", "session_id": None, "reason": "", "at": None},
        "r-new": {"status": "passed", "session_id": "5e1b0c9a7d3f42e8a1b6c0d4", "reason": "", "at": 1_795_000_000.0}})
    # As GET /releases shows a release's last suite verdict (dispatcher/releases/eval_verdict.py).
    evals: dict[str, dict[str, Any] | None] = field(default_factory=lambda: {
        "r-old": None,
        "r-new": {"suite": "5e" * 32, "passed": 3, "runs": 3, "ok": True, "sessions": [], "failed": [],
                  "at": time.time() - 725, "by": "admin-1"}})
    changes: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)  # each request's Authorization header
    changed_by: str = "first configuration"
    changed_at: float = 1_795_000_000.0

    def view(self) -> dict[str, Any]:
        return {"stable": self.stable, "version": [int(self.changed_at * 1000), "local"],
                "changed_at": self.changed_at, "changed_by": self.changed_by,
                "releases": [{"name": name, "weight": self.weights[name], "stable": name == self.stable,
                              "created": "2026-11-25T10:00:00Z", "live_sessions": 3 if name == self.stable else 1,
                              "idle_bots": 2, "health": self.health[name], "smoke": self.smoke[name],
                              "eval": self.evals[name]}
                             for name in self.names]}

    def change(self, weights: dict[str, int], reason: str, stable: str | None = None) -> dict[str, Any]:
        self.changes.insert(0, {"at": time.time(), "by": "admin-3f2a", "from": dict(self.weights),
                                "to": dict(weights), "reason": reason})
        self.weights, self.stable = weights, stable or self.stable
        self.changed_by, self.changed_at = "admin-3f2a", time.time()
        return self.view()

    def known(self, name: str) -> str:
        if name not in self.names:
            raise Refusal(422, "unknown_release", f"no release {name!r} is live here; the live ones: "
                          f"{', '.join(self.names)}")
        return name

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] != "releases":
            raise Refusal(404, "not_found", f"no route {path}")
        if method == "GET" and parts == ["releases"]:
            return self.view()
        if method == "GET" and parts == ["releases", "history"]:
            limit = query.get("limit", ["100"])[0]
            if not limit.isdigit() or not 1 <= int(limit) <= 1000:
                raise Refusal(422, "invalid_request", "limit: a whole number from 1 to 1000")
            return {"changes": self.changes[: int(limit)]}
        if method == "POST" and parts == ["releases", "rollback"]:
            if self.weights[self.stable] == 100:
                raise Refusal(409, "nothing_to_roll_back", f"the stable release {self.stable} already takes all "
                              "traffic; to go back further, promote an older release (POST /releases/NAME/promote)")
            return self.change({n: 100 if n == self.stable else 0 for n in self.names}, "rolled back")
        if method == "POST" and len(parts) == 3 and parts[2] == "promote":
            name = self.known(parts[1])
            return self.change({n: 100 if n == name else 0 for n in self.names}, f"{name} promoted", stable=name)
        if method == "PUT" and len(parts) == 2:
            name = self.known(parts[1])
            weight = body.get("weight") if isinstance(body, dict) and set(body) == {"weight"} else None
            if type(weight) is not int or not 0 <= weight <= 100:
                raise Refusal(422, "invalid_weight", 'send {"weight": PERCENT} (0-100); every weight at once: '
                              "PUT /releases")
            return self.change(self.with_weight(name, weight), f"{name} set to {weight}%")
        raise Refusal(405, "method_not_allowed", f"{method} {path}")

    def with_weight(self, name: str, weight: int) -> dict[str, int]:
        """The dispatcher's rule: the rest to the stable release; for the stable release itself, the
        rest shared among the others as they share it now (two releases here: the other one)."""
        weights = dict(self.weights)
        if name != self.stable:
            spare = weights[self.stable] + weights[name] - weight
            if spare < 0:
                raise Refusal(422, "weights_not_100", f"{name} at {weight}% leaves {spare}% for the stable release "
                              f"{self.stable}: lower another release first")
            return {**weights, name: weight, self.stable: spare}
        others = [n for n in self.names if n != name and weights[n]]
        if weight < 100 and not others:
            raise Refusal(422, "weights_not_100", f"{name} is the stable release and no other release takes "
                          f"traffic: give another release the other {100 - weight}% with PUT /releases/NAME")
        return {n: weight if n == name else (100 - weight if others and n == others[0] else 0) for n in self.names}


def handler(releases: Releases) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep the test output to the test's
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            authorization = self.headers.get("Authorization")
            releases.authorizations.append(authorization)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                scheme, _, token = (authorization or "").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    raise Refusal(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer "
                                  "<admin key>', one of DISPATCHER_ADMIN_KEYS")
                if token == CLIENT_KEY:
                    raise Refusal(403, "admin_key_required", "a client API key cannot change releases: use one "
                                  "of DISPATCHER_ADMIN_KEYS")
                if token != ADMIN_KEY:
                    raise Refusal(401, "unauthorized", "invalid admin key")
                body = json.loads(raw) if raw else None
                status, answer = 200, releases.answer(self.command, url.path, parse_qs(url.query), body)
            except Refusal as refusal:
                status = refusal.status
                answer = {"error": {"code": refusal.code, "message": refusal.message}, "detail": refusal.message}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = _serve

    return Handler
