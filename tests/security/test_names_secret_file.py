"""Finding: the recordings folder's `.names-secret` (what binds a key name to its recordings on a local
dispatcher) was read through a symbolic link and taken from any file of 32 bytes or more whoever owned
it and whatever its mode, and the folder store listed it among the objects. Now it is opened without
following a link, must be the dispatcher user's own, mode 0600 and 64 hex characters (else the
dispatcher refuses to start, saying how to fix it), and no listing shows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.names_secret import SECRET_FILE, UnsafeNamesSecret, kept_names_secret
from dispatcher.artifacts.signed_paths import SignedPaths

A_SECRET = b"ab" * 32  # 64 hex characters: the shape the dispatcher writes


def env(folder: Path) -> dict[str, str]:
    return {"RECORDING": "on", "RECORDING_DESTINATION": str(folder)}


def planted(folder: Path, content: bytes = A_SECRET, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_a_fresh_folder_gets_a_secret_of_its_own_and_reads_it_again(tmp_path: Path) -> None:
    made = kept_names_secret(env(tmp_path))
    assert made is not None and len(made) == 64 and kept_names_secret(env(tmp_path)) == made


def test_a_symbolic_link_in_its_place_is_refused(tmp_path: Path) -> None:
    elsewhere = planted(tmp_path / "elsewhere")
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / SECRET_FILE).symlink_to(elsewhere)
    with pytest.raises(UnsafeNamesSecret, match="symbolic link"):
        kept_names_secret(env(tmp_path / "recordings"))


def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    planted(tmp_path, mode=0o644)
    with pytest.raises(UnsafeNamesSecret, match="mode 0600") as refused:
        kept_names_secret(env(tmp_path))
    assert "chmod 600" in str(refused.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = planted(tmp_path)
    os.chown(path, 4242, 4242)
    with pytest.raises(UnsafeNamesSecret, match="uid 4242"):
        kept_names_secret(env(tmp_path))


def test_a_file_that_is_not_64_hex_characters_is_refused(tmp_path: Path) -> None:
    planted(tmp_path, content=b"x" * 40)
    with pytest.raises(UnsafeNamesSecret, match="64 hex"):
        kept_names_secret(env(tmp_path))


async def test_the_folder_store_never_lists_it(tmp_path: Path) -> None:
    assert kept_names_secret(env(tmp_path)) is not None
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "audio.wav").write_bytes(b"RIFF")
    listed = await LocalFolderStore(tmp_path, SignedPaths(b"k" * 32)).objects_under("")
    assert [o.key for o in listed] == ["s1/audio.wav"]
