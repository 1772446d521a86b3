"""The local folder store (`uv run python -m dispatcher`): objects are files under the folder, an
upload is a folder of parts under `.uploads/`, a legal hold a marker file under `.holds/` (at the
held object's key) that `delete` honours, and the bot puts its parts through signed paths on
the dispatcher's own address (signed_paths.py; the route is dispatcher/api/routers/artifacts.py).
File work runs in a thread: a 5 MiB part never holds the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from dispatcher.artifacts.signed_paths import FILE_PATH, PART_PATH, SignedPaths
from dispatcher.artifacts.store import STORE_HELD, OpenUpload, Part, StoredObject, StoreError, os_reason

UPLOADS = ".uploads"
HOLDS = ".holds"
NAMES_SECRET = ".names-secret"  # noqa: S105 - a file name. dispatcher/artifacts/names_secret.py keeps it here: never listed
T = TypeVar("T")


class LocalFolderStore:
    part_urls_outlive_uploads = False  # a part URL is its upload's alone
    versioned: bool | None = False  # a file deleted is gone

    def __init__(self, root: Path, signer: SignedPaths) -> None:
        self.root = root.resolve()
        self.where = str(self.root)
        self.prefix = ""
        self.signer = signer

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreError(f"key {key!r} is outside the store")
        return path

    def _upload(self, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise StoreError("no such upload")
        return self.root / UPLOADS / upload_id

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-check-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            raise StoreError(f"cannot write to the folder {self.root}: {exc.strerror or exc}; create it, or set "
                             "RECORDING_DESTINATION to a folder the dispatcher may write", os_reason(exc)) from None

    async def open_upload(self, key: str, content_type: str, tags: Mapping[str, str] | None = None) -> str:
        upload_id = secrets.token_hex(12)
        folder = self._upload(upload_id)

        def create() -> None:
            folder.mkdir(parents=True)
            (folder / "key").write_text(key)

        await self._io(create)
        return upload_id

    def part_url(self, key: str, upload_id: str, part: int, seconds: float) -> str:
        return self.signer.sign(PART_PATH, {"op": "part", "key": key, "upload": upload_id, "part": part}, seconds)

    def signs_a_part(self, token: str) -> bool:
        """Whether `token` is a valid part path now: checked before its body is read, so a stranger's
        PUT never has the dispatcher hold a part's worth of memory."""
        return self.signer.verify(token, op="part") is not None

    async def accept_part(self, token: str, data: bytes) -> bool:
        """A part PUT through a signed path: False when the path is not valid (now) for any part."""
        claims = self.signer.verify(token, op="part")
        if claims is None:
            return False
        folder = self._upload(str(claims["upload"]))
        target = folder / f"{int(claims['part']):05d}.part"

        def write() -> bool:
            if not folder.is_dir() or (folder / "key").read_text() != claims["key"]:
                return False  # completed or aborted already
            write_whole(target, target.with_suffix(".writing"), data)  # a part put again replaces the old one whole
            return True

        return await self._io(write)

    async def parts(self, key: str, upload_id: str) -> list[Part]:
        folder = self._upload(upload_id)

        def listed() -> list[Part]:
            return [Part(int(path.stem), path.stat().st_size) for path in sorted(folder.glob("*.part"))]

        return await self._io(listed)

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        folder, target = self._upload(upload_id), self._path(key)

        def join() -> None:
            # Joined beside the target and moved in whole: a join cut short (a full disk) leaves no
            # recording and every part in place, to be joined when it is asked again.
            target.parent.mkdir(parents=True, exist_ok=True)
            joining = target.with_name(target.name + ".writing")
            try:
                with joining.open("wb") as out:
                    for part in parts:
                        with (folder / f"{part.number:05d}.part").open("rb") as source:
                            shutil.copyfileobj(source, out)
            except OSError:
                joining.unlink(missing_ok=True)
                raise
            os.replace(joining, target)
            shutil.rmtree(folder)

        await self._io(join)

    async def abort(self, key: str, upload_id: str) -> None:
        await self._io(lambda: shutil.rmtree(self._upload(upload_id), ignore_errors=True))

    async def open_uploads(self, prefix: str) -> list[OpenUpload]:
        def listed() -> list[OpenUpload]:
            found = []
            for folder in (self.root / UPLOADS).glob("*"):
                if (folder / "key").exists() and (key := (folder / "key").read_text()).startswith(prefix):
                    found.append(OpenUpload(key, folder.name, (folder / "key").stat().st_mtime))  # its start
            return found

        return await self._io(listed)

    async def patch(self, key: str, writes: list[tuple[int, bytes]], first_part: int,
                    tags: Mapping[str, str] | None = None) -> None:
        def write() -> None:
            with self._path(key).open("r+b") as out:
                for offset, data in writes:
                    out.seek(offset)
                    out.write(data)

        await self._io(write)

    async def put(self, key: str, data: bytes, content_type: str, tags: Mapping[str, str] | None = None) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, path.with_name(path.name + ".writing"), data)

        await self._io(write)

    async def put_new(self, key: str, data: bytes, content_type: str) -> bool:
        path = self._path(key)

        def create() -> bool:
            path.parent.mkdir(parents=True, exist_ok=True)
            made = path.with_name(f"{path.name}.{secrets.token_hex(6)}.writing")
            write_whole(made, made.with_name(made.name + ".part"), data)
            try:
                os.link(made, path)  # whole or not at all; another writer's, linked first, stands
            except FileExistsError:
                return False
            finally:
                made.unlink(missing_ok=True)
            return True

        return await self._io(create)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return await self._io(lambda: path.read_bytes() if path.is_file() else None)

    async def objects_under(self, prefix: str) -> list[StoredObject]:
        def listed() -> list[StoredObject]:
            base = self._path(prefix) if prefix else self.root
            folder = base if base.is_dir() else base.parent
            hidden = {UPLOADS, HOLDS, NAMES_SECRET}
            return [StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_size)
                    for path in sorted(folder.rglob("*")) if path.is_file() and path.suffix != ".writing"
                    and path.relative_to(self.root).as_posix().startswith(prefix) and not hidden & set(path.parts)]

        return await self._io(listed)

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            held = [key for key in keys if self._hold_marker(key).exists()]
            if held:
                raise StoreError(f"{held[0]} is under a legal hold: lift it first (DELETE .../artifacts/hold)",
                                 STORE_HELD)
            for key in keys:
                self._path(key).unlink(missing_ok=True)

        await self._io(remove)

    def _hold_marker(self, key: str) -> Path:
        self._path(key)  # the key itself must be inside the store
        marker = (self.root / HOLDS / key).resolve()
        if self.root / HOLDS not in marker.parents:
            raise StoreError(f"key {key!r} is outside the store")
        return marker

    async def hold(self, keys: list[str], on: bool) -> None:
        def mark() -> None:
            for key in keys:
                marker = self._hold_marker(key)
                if on:
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.touch()
                else:
                    marker.unlink(missing_ok=True)

        await self._io(mark)

    async def held(self, keys: list[str]) -> list[str]:
        return await self._io(lambda: [key for key in keys if self._hold_marker(key).exists()])

    def download_url(self, key: str, seconds: float) -> str:
        return self.signer.sign(FILE_PATH, {"op": "read", "key": key}, seconds)

    def readable(self, token: str) -> Path | None:
        """The file a signed read path opens, or None."""
        claims = self.signer.verify(token, op="read")
        if claims is None:
            return None
        path = self._path(str(claims["key"]))
        return path if path.is_file() else None

    @staticmethod
    async def _io(work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(work)
        except OSError as exc:
            raise StoreError(f"the recordings folder: {exc.strerror or exc}", os_reason(exc)) from None


def write_whole(target: Path, partial: Path, data: bytes) -> None:
    """`data` at `target` whole or not at all: written beside it, then moved in. A write that fails
    (a full disk) leaves no partial file holding the space its retry needs."""
    try:
        partial.write_bytes(data)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
