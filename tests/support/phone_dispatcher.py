"""A dispatcher that takes phone calls, served on a loopback port, its calls' bots real processes:
with API keys and every carrier's credential (`keyed`), or keyless on loopback."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings, hash_api_key
from tests.support.dispatcher_server import serving

PHONE_HOST = (sys.executable, str(Path(__file__).parents[1] / "phone" / "phone_host.py"))
API_KEY = "phone-test-key-0123456789"
PUBLIC = "https://calls.example.com"
TWILIO_TOKEN = "twilio-auth-token"
PLIVO_TOKEN = "plivo-auth-token"
EXOTEL = ("exotel-key", "exotel-token")


@dataclass
class Phone:
    app: FastAPI
    api: httpx.AsyncClient
    port: int
    telnyx: Ed25519PrivateKey
    launches: list[str] = field(default_factory=list)

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def _counting(machines: LocalMachines, launches: list[str]) -> None:
    launch = machines.launch

    async def counted(spec: LaunchSpec) -> LaunchResult:
        launches.append(spec.session_id)
        return await launch(spec)

    machines.launch = counted  # type: ignore[method-assign]


async def phone_dispatcher(keyed: bool, more_keys: tuple[str, ...] = (),
                           max_concurrent_sessions: int = Settings.max_concurrent_sessions,
                           phone_env: dict[str, str] | None = None, **more: Any) -> AsyncIterator[Phone]:
    """`phone_env`: more of the phone path's variables; `more`: other `Settings` fields (start rates, …)."""
    telnyx = Ed25519PrivateKey.generate()
    public = base64.b64encode(telnyx.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    env = {
        "PHONE_PUBLIC_URL": PUBLIC,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
        "TELNYX_PUBLIC_KEY": public,
        "EXOTEL_API_KEY": EXOTEL[0],
        "EXOTEL_API_TOKEN": EXOTEL[1],
    } if keyed else {}  # fmt: skip
    env.update(phone_env or {})
    settings = Settings(api_key_hashes=frozenset(map(hash_api_key, (API_KEY, *more_keys))) if keyed else frozenset(),
                        max_concurrent_sessions=max_concurrent_sessions, **more)
    machines = LocalMachines(LocalSettings(bot_command=PHONE_HOST, stop_grace_seconds=2.0))
    app = create_app(settings, env=env, machines=machines, rooms=None)
    # Keyless local mode answers loopback names only (or PHONE_PUBLIC_URL's, which only `keyed` sets).
    base = PUBLIC if keyed else "http://127.0.0.1"
    phone = Phone(app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base), 0, telnyx)
    _counting(machines, phone.launches)
    async with serving(app) as port:
        phone.port = port
        try:
            yield phone
        finally:
            await phone.api.aclose()
            await app.state.voicefleet.aclose()
