"""A session's artifacts as the command reads them: their listing (`GET /sessions/{id}/artifacts`),
its refusals turned into one line that says what to do, and each object fetched through its own
short-lived download URL. The URL is the permission: no key is ever sent with it (an S3 URL goes to
the bucket, never to the dispatcher), and the answer's size is checked against the listing's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voicefleet.api import Api, _httpx, path
from voicefleet.errors import Failed, Refused, Unreachable
from voicefleet.settings import ADMIN_KEY_VARIABLE

CHUNK_BYTES = 1024 * 1024


def listing(api: Api, session_id: str) -> dict[str, Any]:
    """The session's artifacts, each with its `url`; a refusal in one line naming the way forward."""
    try:
        return api.call("GET", path("sessions", session_id, "artifacts"))
    except Refused as refused:
        raise plainly(refused, session_id) from None


def plainly(refused: Refused, session_id: str) -> Refused:
    """The refusals an artifact command meets, each in one line with what to do next."""
    if refused.code == "no_artifacts":
        return Refused(404, refused.code, f"session {session_id} kept no artifacts (it was not recorded, or they "
                       f"were erased): `voicefleet session {session_id}` shows its timeline, where "
                       "recording_off or recording_skipped says why")
    if refused.code == "not_found" and "keeps no artifacts" in refused.message:
        return Refused(404, "not_recorded", "this dispatcher records no session: it runs with RECORDING=off "
                       "(docs/recording.md says how to turn it on)")
    if refused.code == "not_found" and refused.message.startswith("no session"):
        return Refused(404, refused.code, f"no session {session_id} for this key: check the id "
                       f"(`voicefleet sessions`), or set {ADMIN_KEY_VARIABLE} to read another key's session")
    return refused


def artifact_named(found: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((a for a in found.get("artifacts", []) if a.get("name") == name), None)


def chunks(artifact: dict[str, Any], timeout: float, expires_in: object) -> Iterator[bytes]:
    """The object's bytes, as its download URL gives them; Refused when the URL no longer reads it."""
    http = _httpx()
    name = artifact.get("name")
    try:
        with http.stream("GET", str(artifact["url"]), timeout=timeout, headers={"User-Agent": "voicefleet-cli"},
                         follow_redirects=False) as answer:
            if answer.status_code in (401, 403):
                raise Refused(answer.status_code, "download_url_expired", f"the download URL of {name} no longer "
                              f"reads it (they last {expires_in} s, or it was erased meanwhile): run the "
                              "command again for fresh URLs")
            if not answer.is_success:
                raise Refused(answer.status_code, "download_failed", f"{name}: its download URL answered HTTP "
                              f"{answer.status_code}: run the command again, or read it with your store's tools")
            yield from answer.iter_bytes(CHUNK_BYTES)
    except http.TransportError as error:
        raise Unreachable(f"{name}: its download did not complete ({error or type(error).__name__}): run the "
                          "command again (a slower store: --timeout SECONDS)") from None


def fetched(artifact: dict[str, Any], timeout: float, expires_in: object) -> bytes:
    """The whole object, its size checked."""
    data = b"".join(chunks(artifact, timeout, expires_in))
    _check_size(artifact, len(data))
    return data


def save(artifact: dict[str, Any], into: Path, timeout: float, expires_in: object) -> Path:
    """Writes the object into `into` under its name (through a `.part` file renamed once its size is
    the listing's: a download cut short never leaves a file that looks whole)."""
    target = inside(into, str(artifact.get("name", "")))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    size = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks(artifact, timeout, expires_in):
                out.write(chunk)
                size += len(chunk)
        _check_size(artifact, size)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def inside(folder: Path, name: str) -> Path:
    """`folder/name`, refused when the name would lead out of it (an absolute name, `..`)."""
    target = folder / name
    if not name or name.startswith(("/", "\\")) or not target.resolve().is_relative_to(folder.resolve()):
        raise Failed(f"the dispatcher listed an artifact named {name!r}, which would be "
                      f"written outside {folder}: nothing was written; read it with your store's tools")
    return target


def _check_size(artifact: dict[str, Any], size: int) -> None:
    listed = artifact.get("size")
    if isinstance(listed, int) and size != listed:
        raise Failed(f"{artifact.get('name')}: {size} bytes arrived where the listing said "
                      f"{listed}: run the command again")
