"""The secret that binds key names to their sessions, kept with the recordings for a local
dispatcher that has no BOT_CHANNEL_TOKEN.

A name's sessions (and so its recordings) belong to an owner key derived from the name and a
deployment secret (dispatcher/api/auth.py). A local dispatcher without BOT_CHANNEL_TOKEN drew that
secret at each run, so after a restart its recordings were no longer the name's: 404 to the key
that made them. Kept in the recordings folder (created once, readable by its owner alone), the
secret lives as long as the recordings it protects; a dispatcher with BOT_CHANNEL_TOKEN or
REGION_SECRET uses that instead and never writes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dispatcher.artifacts.azure_sas import is_azure_destination
from dispatcher.artifacts.settings import ArtifactSettings

log = logging.getLogger(__name__)
SECRET_FILE = ".names-secret"  # noqa: S105 - a file name. Beside `.uploads` and `.holds`: no session's key reaches it
SECRET_BYTES = 32


def kept_names_secret(env: Mapping[str, str]) -> bytes | None:
    """The recordings folder's names secret (made on first use), or None where recordings are off,
    kept in a cloud store, or the folder cannot be written (a secret of this run then, as before)."""
    settings = ArtifactSettings.from_env(env)
    if not settings.on or settings.s3 or settings.gcs or is_azure_destination(settings.destination):
        return None
    path = Path(settings.destination) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _kept(path)
    except OSError as exc:
        log.warning("the key names' secret could not be kept in %s (%s): a named key's recordings are its own "
                    "until this dispatcher stops; set BOT_CHANNEL_TOKEN to keep them its own after", path.parent,
                    exc.strerror or exc)
        return None


def _kept(path: Path) -> bytes:
    """The secret in `path`, written first if there is none: made whole beside it, then linked in,
    so two dispatchers starting at once on one folder read the same one."""
    if not path.exists():
        made = path.with_name(f"{path.name}.{secrets.token_hex(6)}")
        descriptor = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as written:
                written.write(secrets.token_hex(SECRET_BYTES).encode())
            with contextlib.suppress(FileExistsError):  # another dispatcher's came first: that one stands
                os.link(made, path)
        finally:
            made.unlink(missing_ok=True)
    value = path.read_bytes().strip()
    if len(value) < SECRET_BYTES:
        raise OSError(f"{path.name} holds no secret: remove it to make a new one (a name's earlier recordings "
                      "are then the admin's alone)")
    return value
