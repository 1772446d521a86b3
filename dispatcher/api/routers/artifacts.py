"""A session's artifacts (docs/recording.md):

    GET    /sessions/{id}/artifacts       each object of the session with a short-lived download URL
    DELETE /sessions/{id}/artifacts       erases them all (audited: who, when, which objects); 409 while held
    PUT    /sessions/{id}/artifacts/hold  a legal hold on them all (admin keys only, audited)
    DELETE /sessions/{id}/artifacts/hold  lifts it (admin keys only, audited)
    PUT    /bots/recordings/parts/{token} the local folder store: a bot's part, through a signed path
    GET    /recordings/files/{token}      the local folder store: an object, through a signed path

The first two are for the key that started the session or an admin key (DISPATCHER_ADMIN_KEYS; an
admin's read or erasure of another key's session is on the session audit trail first, as its other
reads are: admin_access.py); a hold is an admin key's alone, every one on the audit trail; the last
two need no key: the signed path is the permission, for one
part or one object, for minutes.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from botchannel.recording import MAX_PART_BYTES
from dispatcher.api.admin_access import reachable_id
from dispatcher.api.admin_auth import admin_key, admin_of
from dispatcher.api.carrier_copy import carrier_recordings
from dispatcher.api.dependencies import app_state, identified
from dispatcher.api.schemas import ERRORS
from dispatcher.api.state import AppState
from dispatcher.artifacts.building import Artifacts
from dispatcher.artifacts.reading import Held, StillUploading
from dispatcher.artifacts.signed_paths import PART_PATH
from dispatcher.artifacts.store import StoreError
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import is_session_id, owned_by
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger(__name__)
router = APIRouter(tags=["artifacts"], responses=ERRORS)
MEDIA_TYPES = {".wav": "audio/wav", ".json": "application/json", ".jsonl": "application/x-ndjson"}
READ_ARTIFACTS = "session.artifacts.read"
ERASE_ARTIFACTS = "session.artifacts.erase"
HOLD_ARTIFACTS = "session.artifacts.hold"
RELEASE_ARTIFACTS = "session.artifacts.release"


async def _permitted(request: Request, session_id: str, action: str) -> tuple[AppState, Artifacts, str]:
    """(state, artifacts, who): the key that started the session, or an admin key (audited as
    `action`); 404 for another key."""
    state = app_state(request)
    if state.artifacts is None:
        raise ApiError(404, "not_found", "this dispatcher keeps no artifacts")
    who = await identified(request)
    await reachable_id(request, session_id, who, action)
    admin = admin_key(state.settings, request.headers.get("authorization"))
    if admin is not None and not owned_by(session_id, who.owner_key):
        return state, state.artifacts, admin
    return state, state.artifacts, who.name or who.id


FINISHING_RETRY_SECONDS = 5


def _still_recorded(session_id: str, then: str = "erase its artifacts") -> ApiError:
    # Retry-After on every refusal: a replica that sees another's upload open cannot tell a live call
    # from one whose stop is under way, and a client that already stopped it only has to ask again.
    return ApiError(409, "recording_in_progress", f"session {session_id} is still being recorded: end it first "
                    f"(DELETE /sessions/{session_id}), then {then}", retry_after=FINISHING_RETRY_SECONDS)


async def _refuse_while_finishing(state: AppState, artifacts: Artifacts, session_id: str,
                                  then: str = "erase its artifacts") -> None:
    """409 while the session is recorded, or its artifacts are still being written, by this replica or
    (its timeline says) by another: what its end writes after an erasure or a hold would escape it."""
    recordings = artifacts.recordings
    if recordings.recorded(session_id) and not recordings.finishing(session_id):
        raise _still_recorded(session_id, then)  # its upload would write the recording back after the erasure
    if recordings.finishing(session_id) or recordings.finishing_elsewhere(
            session_id, await state.sessions.timeline.read(session_id)):
        raise ApiError(409, "recording_in_progress", f"session {session_id} is still being recorded, or its recording, "
                       f"transcript and report are still being written (its timeline's recording_ready, "
                       f"recording_partial or recording_missing says when they are): end it if it has not ended "
                       f"(DELETE /sessions/{session_id}), then {then}", retry_after=FINISHING_RETRY_SECONDS)


def _unavailable(exc: StoreError) -> ApiError:
    """The store's own words (they may name an account and a role) go to the log; the client gets its reason."""
    log.warning("the artifacts store failed a client's request: %s", exc)
    return ApiError(503, "store_unavailable", f"the artifacts store could not serve this: {exc.client_text}",
                    retry_after=5.0, extra={"reason": exc.reason})


@router.get("/sessions/{session_id}/artifacts", summary="A session's recording and report, with download URLs")
async def list_artifacts(request: Request, session_id: str) -> dict[str, Any]:
    """Each object under the session's folder, with a download URL valid `expires_in` seconds. 404
    when the session kept nothing (not recorded, erased, or another key's)."""
    state, artifacts, _ = await _permitted(request, session_id, READ_ARTIFACTS)
    try:
        listing = await artifacts.reader.listing(session_id)
    except StoreError as exc:
        raise _unavailable(exc) from None
    # The carrier's own copy (PHONE_CARRIER_RECORDING) is a link the timeline holds: the carrier keeps the audio.
    linked = carrier_recordings(await state.sessions.timeline.read(session_id))
    if listing is None and not linked:
        raise ApiError(404, "no_artifacts", f"session {session_id} kept no artifacts (not recorded, or erased)")
    if listing is None:
        listing = {"session_id": session_id, "artifacts": []}
    if linked:
        listing["carrier_recordings"] = linked
    for artifact in listing["artifacts"]:
        if artifact["url"].startswith("/"):  # the folder store's: this dispatcher's own address
            artifact["url"] = str(request.base_url).rstrip("/") + artifact["url"]
    return listing


@router.delete("/sessions/{session_id}/artifacts", summary="Erase a session's artifacts")
async def erase_artifacts(request: Request, session_id: str) -> dict[str, Any]:
    """Deletes every object of the session and its index, then writes the erasure's audit record
    (`erasures/…`: who, when, which objects, no content) and notes `artifacts_erased` on the timeline."""
    state, artifacts, who = await _permitted(request, session_id, ERASE_ARTIFACTS)
    await _refuse_while_finishing(state, artifacts, session_id)
    if left := artifacts.recordings.writable_for(session_id):  # its bot's part URL could write it back
        raise ApiError(409, "recording_in_progress", f"session {session_id}'s bot can still write its recording for "
                       f"{math.ceil(left)} s (the last part URL it was given): erase its artifacts then",
                       retry_after=math.ceil(left))
    try:
        record = await artifacts.reader.erase(session_id, who)
    except StillUploading:  # another replica holds its bot and its upload
        raise _still_recorded(session_id) from None
    except Held:
        raise ApiError(409, "artifacts_held", f"session {session_id}'s artifacts are under a legal hold: an admin "
                       f"lifts it first (DELETE /sessions/{session_id}/artifacts/hold)") from None
    except StoreError as exc:
        raise _unavailable(exc) from None
    if record is None:
        raise ApiError(404, "no_artifacts", f"session {session_id} has no artifacts to erase")
    state.sessions.timeline.note(session_id, "artifacts_erased", by=who, objects=len(record["objects"]))
    answer = {"session_id": session_id, "erased": record["objects"], "by": who}
    if "versions" in record:  # what a versioned store still holds of them
        answer["versions"] = record["versions"]
    return answer


@router.put("/sessions/{session_id}/artifacts/hold", summary="Put a legal hold on a session's artifacts")
async def hold_artifacts(request: Request, session_id: str) -> dict[str, Any]:
    """Every object of the session and its index are held: no erasure, no retention rule deletes them
    until the hold is lifted. An admin key's alone, on the audit trail first."""
    return await _held(request, session_id, True)


@router.delete("/sessions/{session_id}/artifacts/hold", summary="Lift a legal hold on a session's artifacts")
async def release_artifacts(request: Request, session_id: str) -> dict[str, Any]:
    """The hold lifted: the session's artifacts may be erased, and expire with their retention again."""
    return await _held(request, session_id, False)


async def _held(request: Request, session_id: str, on: bool) -> dict[str, Any]:
    state = app_state(request)
    await identified(request)
    admin = admin_of(request, "hold a session's artifacts")
    if state.artifacts is None or not is_session_id(session_id):
        raise ApiError(404, "no_artifacts", f"session {session_id} has no artifacts to hold")
    # A hold set mid-call would cover only what is written so far: the recording, transcript and report
    # written at its end would be left to the retention rule that deletes them.
    if on:
        await _refuse_while_finishing(state, state.artifacts, session_id, "hold its artifacts")
    try:  # on the record before the store is touched, like every admin action on a session
        await state.session_audit.note({"at": time.time(), "by": admin, "action": HOLD_ARTIFACTS if on
                                        else RELEASE_ARTIFACTS, "session_id": session_id,
                                        "region": state.settings.region or None})
    except StoreUnavailable:
        raise ApiError(503, "audit_unavailable", "the audit trail could not be written (the store did not answer), "
                       "so no hold was changed: try again once the store answers", retry_after=5.0) from None
    try:
        keys = await state.artifacts.reader.hold(session_id, on)
    except StillUploading:  # another replica holds its bot and its upload
        raise _still_recorded(session_id, "hold its artifacts") from None
    except StoreError as exc:
        raise _unavailable(exc) from None
    if keys is None:
        raise ApiError(404, "no_artifacts", f"session {session_id} has no artifacts to hold")
    state.sessions.timeline.note(session_id, "artifacts_held" if on else "artifacts_released", by=admin,
                                 objects=len(keys))
    return {"session_id": session_id, "held": on, "objects": keys, "by": admin}


@router.put(PART_PATH + "{token}", include_in_schema=False)
async def put_part(request: Request, token: str) -> Response:
    artifacts = app_state(request).artifacts
    if artifacts is None or artifacts.local is None:
        raise ApiError(404, "not_found", "this dispatcher's recordings are not kept in a local folder")
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_PART_BYTES:
        raise ApiError(413, "part_too_large", f"a part is at most {MAX_PART_BYTES} bytes, with its Content-Length")
    if not artifacts.local.signs_a_part(token):
        raise _invalid_part_url()
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PART_BYTES:
            raise ApiError(413, "part_too_large", f"a part is at most {MAX_PART_BYTES} bytes")
    try:
        taken = await artifacts.local.accept_part(token, bytes(data))
    except StoreError as exc:
        artifacts.recordings.failure = str(exc)  # shown in GET /status (a full disk says so there)
        raise _unavailable(exc) from None
    if not taken:
        raise _invalid_part_url()
    return Response(status_code=200)


def _invalid_part_url() -> ApiError:
    return ApiError(403, "invalid_part_url", "this part URL is not valid (expired, altered, or its upload is over): "
                    "ask the dispatcher for a new one (recording.part)")


@router.get("/recordings/files/{token}", include_in_schema=False)
async def get_file(request: Request, token: str) -> FileResponse:
    artifacts = app_state(request).artifacts
    path = artifacts.local.readable(token) if artifacts is not None and artifacts.local is not None else None
    if path is None:
        raise ApiError(403, "invalid_download_url", "this download URL is not valid (expired, altered, or erased)")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))
