"""Sessions whose home is a given cell (dispatcher/machines/cells.py), for the tests of providers
that launch over cells (ECS_CELLS, CLOUDRUN_CELLS)."""

from __future__ import annotations

import secrets
from typing import Any


def homed_in(machines: Any, cell: str, n: int = 1) -> list[str]:
    """`n` new session ids whose home in `machines.cells` is `cell`."""
    found: list[str] = []
    while len(found) < n:
        session = f"s-{secrets.token_hex(6)}"
        if machines.cells.home(session) == cell:
            found.append(session)
    return found


async def admin_status(machines: Any) -> dict[str, Any]:
    """The dispatcher's `GET /status` over `machines`, as an admin reads it."""
    import httpx

    from dispatcher.app import create_app
    from dispatcher.settings import Settings, hash_api_key
    from tests.support.dispatcher_server import serving

    key = "admin-key-0123456789"
    settings = Settings(api_key_hashes=frozenset(), admin_key_hashes=frozenset({hash_api_key(key)}))
    app = create_app(settings, env={"RESERVE_MAX_IDLE": "0"}, machines=machines, rooms=None)
    async with serving(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://127.0.0.1") as api:
        try:
            body: dict[str, Any] = (await api.get("/status", headers={"Authorization": f"Bearer {key}"})).json()
        finally:
            await app.state.voicefleet.aclose()
    return body
