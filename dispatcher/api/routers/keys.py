"""API keys made and revoked at runtime (dispatcher/api/runtime_keys.py), admin only, audited.

    POST   /keys                  {"name": "acme"}: a new key; its secret is in this answer only
                                  ({"name": "acme", "another": true}: a second secret, for a rotation)
    GET    /keys                  every key: name, where it comes from, created, last used, sessions
    DELETE /keys/{name}           every secret of a runtime key: refused at every replica within a second,
                                  at every region within two (dispatcher/regions/runtime.py)
    DELETE /keys?secret_id=ID     one secret (the old one, after a rotation)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.capacity import Admin, _runtime
from dispatcher.api.runtime_keys import ID_HEX, MAX_KEYS, KeyRecord, new_secret, valid_name
from dispatcher.api.runtime_settings import REVOKED_NAMES, REVOKED_SETTINGS, secret_use
from dispatcher.api.schemas import ERRORS
from dispatcher.api.settings_key_ids import revoked_ids
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError

router = APIRouter(responses=ERRORS, tags=["capacity"])


@router.post("/keys", summary="Create an API key (its secret is shown once)", status_code=201)
async def create_key(request: Request, by: Admin, payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    runtime, _floors = _runtime(state)
    if not state.auth.enabled:
        raise ApiError(400, "keyless_dispatcher", "this dispatcher runs without keys (loopback only): set "
                       "DISPATCHER_API_KEYS and DISPATCHER_ADMIN_KEYS, then create keys here", extra={})
    name, another = payload.get("name"), payload.get("another", False)
    if not isinstance(name, str) or not isinstance(another, bool) or set(payload) - {"name", "another"}:
        raise ApiError(400, "invalid_key_request", 'send {"name": "NAME"} (and "another": true for a second '
                       "secret of an existing key)", extra={})
    valid_name(name)
    settings_name = name in state.auth.settings_names
    if settings_name and not another:
        raise ApiError(409, "key_name_taken", f"{name!r} is a key of DISPATCHER_API_KEYS: a runtime key takes "
                       f"another name, or adds a secret to it for a rotation (`voicefleet keys create {name} "
                       "--another`)", extra={})
    # A name is its sessions' and recordings' owner, whichever secret: a name used before and revoked
    # since still owns them, so a new key under it is that same party's, asked for as such (--another).
    # Used: a settings key's or a runtime key's use, in any region (the names ever used travel with the
    # runtime settings); this region's own tally of uses too, which older records kept alone.
    used_here = name in await runtime.uses()
    secret, record = await asyncio.to_thread(new_secret, name, by)  # its scrypt off the event loop

    def change(current: dict[str, Any]) -> list[dict[str, Any]]:
        keys = current["keys"]
        used_before = used_here or name in current["entries"]["used"]
        taken = any(isinstance(v, dict) and v.get("name") == name for v in keys.values())
        if taken and not another:
            raise ApiError(409, "key_name_taken", f"a key named {name!r} exists: pick another name, or add a "
                           f"second secret to it for a rotation (`voicefleet keys create {name} --another`)",
                           extra={})
        if used_before and not taken and not another:
            raise ApiError(409, "key_name_used", f"a key named {name!r} was used before (a runtime key revoked "
                           "since, or a key of DISPATCHER_API_KEYS removed since, here or in another region): its "
                           "sessions and recordings stay that name's for their retention, so a new key under it "
                           f"would read them. Pick another name, or, for the same party, `voicefleet keys create "
                           f"{name} --another`", extra={})
        if another and not taken and not used_before and not settings_name:
            raise ApiError(404, "unknown_key", f"no runtime key is named {name!r}: create it without --another",
                           extra={})
        if len(keys) >= MAX_KEYS:
            raise ApiError(409, "too_many_keys", f"{MAX_KEYS} secrets exist: revoke some first", extra={})
        keys[record.secret_id] = record.to_json()
        return [{"by": by, "action": "key.create", "name": name, "secret_id": record.secret_id}]

    await runtime.change(change)
    return {"name": name, "secret_id": record.secret_id, "secret": secret, "created": record.created}


@router.get("/keys", summary="Every API key: name, source, created, last used, sessions")
async def list_keys(request: Request, _: Admin) -> dict[str, Any]:
    state = app_state(request)
    runtime, _floors = _runtime(state)
    uses = await runtime.uses()
    revoked = revoked_ids(runtime.entries())
    rows = [{"name": name, "source": "settings", "secret_id": secret_id, "created": None, "last_used": None,
             "sessions": None} for secret_id, name in sorted(state.auth.settings_secrets().items(),
                                                             key=lambda item: (item[1] or "", item[0]))
            if name is not None and secret_id not in revoked]  # a key with no `name:` is no name's, as before
    for record in sorted(runtime.keys.records.values(), key=lambda r: (r.name, r.created)):
        _name_used, sessions = uses.get(record.name, (None, 0))  # sessions are the name's: it owns them
        last_used, _ = uses.get(secret_use(record.secret_id), (None, 0))  # each secret's own last use
        rows.append({"name": record.name, "source": "runtime", "secret_id": record.secret_id,
                     "created": record.created, "created_by": record.by, "last_used": last_used,
                     "sessions": sessions})
    return {"keys": rows}


@router.delete("/keys/{name}", summary="Revoke every secret of a runtime key", status_code=204)
async def revoke_key(request: Request, by: Admin, name: str) -> Response:
    state = app_state(request)
    settings = [i for i, n in state.auth.settings_secrets().items() if n == name]
    await _revoke(state, by, lambda r: r.name == name, f"no key is named {name[:80]!r}", whole=name,
                  settings=[(i, name) for i in settings])
    return Response(status_code=204)


@router.delete("/keys", summary="Revoke one secret of a runtime key, by its id", status_code=204)
async def revoke_secret(request: Request, by: Admin, secret_id: Annotated[str, Query(max_length=64)]) -> Response:
    if not re.fullmatch(f"[0-9a-f]{{{ID_HEX}}}", secret_id):
        # Never echoed: what was sent may be the secret itself, pasted where its id goes.
        raise ApiError(400, "invalid_secret_id", f"a secret id is {ID_HEX} hex digits (the ones after vf_ in a "
                       "secret; `voicefleet keys list` shows them): send the id, never the secret", extra={})
    state = app_state(request)
    configured = state.auth.settings_secrets()
    if secret_id in configured and configured[secret_id] is None:
        raise ApiError(409, "unnamed_settings_key", f"the key {secret_id} of DISPATCHER_API_KEYS has no name: give "
                       "it one (`name:key`) to revoke it at runtime, or take it out of the settings", extra={})
    name = configured.get(secret_id)
    await _revoke(state, by, lambda r: r.secret_id == secret_id, f"no key has the secret id {secret_id!r}",
                  settings=[(secret_id, name)] if name is not None else [])
    return Response(status_code=204)


async def _revoke(state: AppState, by: str, chosen: Callable[[KeyRecord], bool], missing: str,
                  whole: str | None = None, settings: list[tuple[str, str]] | None = None) -> None:
    """`whole`: the name revoked, every secret of it, including one another region makes meanwhile;
    `settings`: keys of DISPATCHER_API_KEYS revoked too, (secret id, name) each."""
    runtime, _floors = _runtime(state)

    def change(current: dict[str, Any]) -> list[dict[str, Any]]:
        keys = current["keys"]
        gone = [r for r in (KeyRecord.from_json(i, v) for i, v in keys.items()) if r is not None and chosen(r)]
        already = revoked_ids(current["entries"])
        configured = [(i, n) for i, n in settings or () if i not in already]
        if not gone and not configured:
            raise ApiError(404, "unknown_key", f"{missing} (`voicefleet keys list` shows them)", extra={})
        for record in gone:
            del keys[record.secret_id]
        if whole is not None:
            current[REVOKED_NAMES] = [whole]
        current[REVOKED_SETTINGS] = configured
        return ([{"by": by, "action": "key.revoke", "name": r.name, "secret_id": r.secret_id} for r in gone]
                + [{"by": by, "action": "key.revoke", "name": n, "secret_id": i, "source": "settings"}
                   for i, n in configured])

    await runtime.change(change)
