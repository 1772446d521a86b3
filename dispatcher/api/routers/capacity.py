"""The capacity an admin changes at runtime, on every replica within about a second, audited
(dispatcher/api/runtime_capacity.py says what each value is over its setting).

    GET   /capacity           each value: what applies, its setting, the runtime value, what is in use
    PATCH /capacity           {"sessions": 200, "key.acme": 0.5, "reserve.target": null}: one change
    GET   /audit/runtime      who changed capacity or keys, what, old → new, when; newest first
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from dispatcher.api.admin_auth import admin_of
from dispatcher.api.dependencies import app_state
from dispatcher.api.runtime_capacity import checked, listing, readable, unknown_keys
from dispatcher.api.schemas import ERRORS
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.store.coordination import HISTORY_KEPT

router = APIRouter(responses=ERRORS, tags=["capacity"])
CHANGE_CAPACITY = "change capacity and keys"


async def admitted(request: Request) -> str:
    """The admin's id, or 401/403, asked before the body is validated."""
    return admin_of(request, CHANGE_CAPACITY)


Admin = Annotated[str, Depends(admitted)]


@router.get("/capacity", summary="The capacity values, their settings and what is in use")
async def capacity(request: Request, _: Admin) -> dict[str, Any]:
    return view(app_state(request))


@router.patch("/capacity", summary="Change several capacity values in one audited change")
async def change_capacity(request: Request, by: Admin,
                          payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    runtime, floors = _runtime(state)
    names = set(state.auth.names)

    def change(record: dict[str, Any]) -> list[dict[str, Any]]:
        before = dict(record["capacity"])
        record["capacity"] = checked(payload, before, floors, names)
        return [{"by": by, "action": "capacity.set", "name": name, "old": before.get(name),
                 "new": record["capacity"].get(name), "setting": floors.setting(name)}
                for name in payload if before.get(name) != record["capacity"].get(name)]

    await runtime.change(change)
    unknown = unknown_keys(payload, names)
    if unknown:  # kept (the key may be made next), as a recording rule for a key not made yet is
        return {**view(state), "warnings": [f"no API key is named {name!r} yet: its budgets apply once one is "
                                            "(`voicefleet keys list` shows the names)" for name in unknown]}
    return view(state)


@router.get("/audit/runtime", summary="Who changed capacity or API keys, what, when")
async def runtime_audit(request: Request, _: Admin,
                        limit: Annotated[int, Query(ge=1, le=HISTORY_KEPT)] = 100) -> dict[str, Any]:
    """Each line: `at` (epoch seconds), `by` (the admin key's id), `action` (`capacity.set`,
    `key.create`, `key.revoke`), and for capacity `name`, `old`, `new` (null: the setting applies),
    for keys `name` and `secret_id`."""
    runtime, _floors = _runtime(app_state(request))
    return {"lines": await runtime.history(limit)}


def view(state: AppState) -> dict[str, Any]:
    runtime, floors = _runtime(state)
    in_use: dict[str, float] = {"sessions": state.sessions.admission.in_use()}
    in_use[f"provider.{floors.provider}"] = in_use["sessions"]
    if state.reserve is not None:
        idle = len(state.reserve.idle_records)
        in_use.update({"reserve.min": idle, "reserve.max": idle, "reserve.target": idle})
    values = readable(runtime.capacity, floors)
    in_use.update(state.sessions.budgets.in_use(values, time.time()))  # what each key used of its budgets
    values = listing(values, floors, set(state.auth.names), in_use)
    # Each key's warm claims a minute (KEY_WARM_SHARE of reserve.max as it applies; 0: not counted).
    return {"version": runtime.record["version"], "values": values, "key_warm_share": state.sessions.share.warm_share}


def _runtime(state: AppState) -> tuple[Any, Any]:
    if state.runtime is None or state.capacity_floors is None:
        raise ApiError(404, "not_found", "this dispatcher keeps no runtime settings", extra={})
    return state.runtime, state.capacity_floors
