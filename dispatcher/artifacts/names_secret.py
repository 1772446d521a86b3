"""The secret that binds key names to their sessions, kept with the recordings for a local
dispatcher that has no BOT_CHANNEL_TOKEN.

A name's sessions (and so its recordings) belong to an owner key derived from the name and a
deployment secret (dispatcher/api/auth.py). A local dispatcher without BOT_CHANNEL_TOKEN drew that
secret at each run, so after a restart its recordings were no longer the name's: 404 to the key
that made them. Kept with the recordings (a folder's file, readable by its owner alone; an object
of a bucket's, beside its retention folders), the secret lives as long as the recordings it
protects; a dispatcher with BOT_CHANNEL_TOKEN or REGION_SECRET uses that instead and never writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dispatcher.artifacts.azure_sas import is_azure_destination
from dispatcher.artifacts.azure_store import AzureBlobStore
from dispatcher.artifacts.gcs_store import GcsStore
from dispatcher.artifacts.keys import names_secret_key
from dispatcher.artifacts.local_store import NAMES_SECRET
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.store import StoreError

log = logging.getLogger(__name__)
SECRET_FILE = NAMES_SECRET  # beside `.uploads` and `.holds`: no session's key reaches it, no listing shows it
SECRET_BYTES = 32
STORE_SECONDS = 30.0  # a bucket's read and write at start-up, bounded: past it, a secret of this run
SECRET_SHAPE = re.compile(rb"[0-9a-f]{%d}" % (SECRET_BYTES * 2))


class UnsafeNamesSecret(ValueError):
    """The names secret's file is not one this dispatcher alone made and reads: it refuses to start
    (whoever planted or can read it could read every named key's recordings)."""


def kept_names_secret(env: Mapping[str, str]) -> bytes | None:
    """The recordings' names secret (made on first use), or None where recordings are off or the
    store cannot be written (a secret of this run then, as before)."""
    settings = ArtifactSettings.from_env(env)
    if not settings.on:
        return None
    if settings.s3 or settings.gcs or is_azure_destination(settings.destination):
        return _kept_in_bucket(settings, env)
    path = Path(settings.destination) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _kept(path)
    except OSError as exc:
        log.warning("the key names' secret could not be kept in %s (%s): a named key's recordings are its own "
                    "until this dispatcher stops; set BOT_CHANNEL_TOKEN to keep them its own after", path.parent,
                    exc.strerror or exc)
        return None


def _kept_in_bucket(settings: ArtifactSettings, env: Mapping[str, str]) -> bytes | None:
    """The secret as an object of the recordings' bucket, written first if there is none. Asked on a
    thread of its own (the app is built inside a running loop), for at most STORE_SECONDS."""
    worker = ThreadPoolExecutor(1, thread_name_prefix="names-secret")
    try:
        return worker.submit(asyncio.run, _in_bucket(settings, env)).result(timeout=STORE_SECONDS)
    except (StoreError, TimeoutError) as exc:
        log.warning("the key names' secret could not be kept in %s (%s): a named key's recordings are its own "
                    "until this dispatcher stops; set BOT_CHANNEL_TOKEN to keep them its own after",
                    settings.destination, exc)
        return None
    finally:
        worker.shutdown(wait=False)  # a store still retrying after the bound is left to finish on its own


async def _in_bucket(settings: ArtifactSettings, env: Mapping[str, str]) -> bytes:
    from dispatcher.artifacts.building import build_store

    store = build_store(settings, env)
    try:
        key = names_secret_key(store.prefix, SECRET_FILE)
        value = await store.get(key)
        if value is None:  # made once: of two dispatchers starting at that instant, the first write stands
            await store.put_new(key, secrets.token_hex(SECRET_BYTES).encode(), "text/plain")
            value = await store.get(key)
    finally:
        if isinstance(store, GcsStore | AzureBlobStore):  # their own connection pools
            await store.aclose()
    if value is None or not SECRET_SHAPE.fullmatch(value.strip()):
        raise UnsafeNamesSecret(f"{settings.destination}/{SECRET_FILE} holds no secret this dispatcher made (64 hex "
                                "characters): remove it to make a new one (a name's earlier recordings are then "
                                "the admin's alone)")
    return value.strip()


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
    return _read(path)


def _read(path: Path) -> bytes:
    """The secret in `path`: a regular file (never through a link), the dispatcher's own, 0600, 64 hex."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if path.is_symlink():
            raise UnsafeNamesSecret(f"{path} is a symbolic link: the key names' secret must be a file of its own; "
                                    "remove the link (a new secret is made at the next start)") from exc
        raise
    with os.fdopen(descriptor, "rb") as kept:
        shown = os.fstat(kept.fileno())
        if not stat.S_ISREG(shown.st_mode) or shown.st_uid != os.geteuid() or stat.S_IMODE(shown.st_mode) != 0o600:
            raise UnsafeNamesSecret(
                f"{path} must be a file owned by this dispatcher's user (uid {os.geteuid()}) with mode 0600 "
                f"(it is uid {shown.st_uid}, mode {stat.S_IMODE(shown.st_mode):o}): whoever else can write or read "
                f"it reads every named key's recordings. Fix it with `chown {os.geteuid()} {path} && chmod 600 "
                f"{path}`, or remove it if you did not make it")
        value = kept.read(SECRET_BYTES * 2 + 2).strip()
    if not SECRET_SHAPE.fullmatch(value):
        raise UnsafeNamesSecret(f"{path} holds no secret this dispatcher made (64 hex characters): remove it to make "
                                "a new one (a name's earlier recordings are then the admin's alone)")
    return value
