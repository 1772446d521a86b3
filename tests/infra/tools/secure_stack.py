"""Stack files as the Pulumi CLI leaves them once their secrets are set: each `pulumi config set --secret
KEY …` writes `KEY: {secure: <ciphertext>}` under `config:` (with the passphrase provider `v1:<nonce>:<sealed>`,
both base64, and `encryptionsalt:` at the top), `--secret --path 'a.b'` the nested form `a: {b: {secure: …}}`.
The ciphertexts here are made up but shaped like the CLI's: no offline tool can open one anyway."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from stacks.tools import paths
from stacks.tools import plan as plan_module

# What `pulumi stack init --secrets-provider passphrase` writes first.
ENCRYPTION_SALT = "encryptionsalt: v1:Q2FsbG1lU2FsdDE=:v1:QUJDREVGR0hJSktM:bXlzYWx0ZWRzdGF0ZW1lbnQ=\n"


def ciphertext(name: str, length: int = 48) -> str:
    """A passphrase provider's ciphertext of a `length`-character value: a 12-byte nonce, then the
    sealed value with its 16-byte tag (AES-256-GCM), each base64."""
    seed = hashlib.sha256(name.encode()).digest()
    sealed = (seed * (length // 32 + 2))[: length + 16]
    return f"v1:{base64.b64encode(seed[:12]).decode()}:{base64.b64encode(sealed).decode()}"


def secure_lines(secrets: Mapping[str, str], path_secrets: Mapping[str, Iterable[str]] | None = None) -> str:
    """The `config:` lines the CLI appends: `secrets` maps a key to its ciphertext; `path_secrets` a key
    to the names set under it with `--path` (each its own secure leaf)."""
    lines = [f"  voicefleet:{key}:\n    secure: {value}\n" for key, value in secrets.items()]
    for key, names in (path_secrets or {}).items():
        lines.append(f"  voicefleet:{key}:\n" + "".join(
            f"    {name}:\n      secure: {ciphertext(f'{key}.{name}')}\n" for name in names))
    return "".join(lines)


def write_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: str, config_lines: str,
                plain: Mapping[str, str] | None = None) -> str:
    """A copy of the example stack with `config_lines` (and plain `pulumi config set` values) added, read
    by every tool in place of the committed one."""
    text = paths.stack_file(stack).read_text()
    text += "".join(f"  voicefleet:{key}: {value}\n" for key, value in (plain or {}).items()) + config_lines
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(ENCRYPTION_SALT + text)
    monkeypatch.setattr(paths, "STACK_FILES", tmp_path)
    monkeypatch.setattr(plan_module, "REPOSITORY", tmp_path)
    return stack
