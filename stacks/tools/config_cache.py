"""A content-keyed cache of the dispatcher environments a stack's program gives (stacks/tools/config_check.py).

Running the program under mocks costs seconds, most of it importing the cloud's Pulumi SDK, and its
answer depends only on what it reads: an entry is named by the stack, the --config items and the
toolchain, and holds a digest of every input (FOLDERS, the bot project, the imported modules, each
image's build context); a hit needs all unchanged, anything else is a miss and the program runs. Only
what the check would print anyway is stored (plain values, a secret's name), never a refusal, and only
in a folder that is the user's alone. The inputs and rules, for users: docs/cli.md "Configuration".
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacks.config.reader import DEFAULTS, NAMESPACE
from stacks.config.stack_keys import PROVIDER_PACKAGES
from stacks.tools.dispatcher_env import DispatcherEnv
from stacks.tools.paths import PROGRAM, PROJECT_FILE, REPOSITORY, stack_file

if TYPE_CHECKING:
    from stacks.tools.mocks import Registration

CACHE_VERSION = 2
# what the program, its settings and the mocks are made of
FOLDERS = ("stacks", "images", "infra", "dispatcher", "voicefleet_settings")
MAX_AGE_DAYS = 30
IMAGE_TYPE = "docker-build:index:Image"
SKIPPED = frozenset({"__pycache__", ".venv", ".git", "node_modules", ".mypy_cache", ".ruff_cache"})
CONFIG_VARIABLE = "PULUMI_CONFIG"  # and PULUMI_CONFIG_<KEY>: config the SDK reads from the environment
MAX_ENTRY_BYTES = 16 * 1024 * 1024  # an entry is kilobytes: anything far larger is no entry of ours


def cache_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CACHE_HOME/voicefleet/config-check (~/.cache when unset or not absolute, as the spec says)."""
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "voicefleet" / "config-check"


def _own(info: os.stat_result, closed: int = 0o077) -> bool:
    """Made by this user, and none of the `closed` permission bits set (others may not write, or read):
    a kept answer is believed as the program's."""
    return not hasattr(os, "getuid") or (info.st_uid == os.getuid() and not info.st_mode & closed)


def _private_folder(environ: Mapping[str, str], *, make: bool) -> Path | None:
    """The cache folder, this user's alone (it and voicefleet/ above it: real folders, not links, owned by
    the user, closed to others), or None: an entry another local user could plant or swap would pass
    their answer off as the program's. `make`: create what is missing, 0700."""
    folder = cache_folder(environ)
    # voicefleet/ may be listed by others (its entries are 0600), never written: a writer could swap the folder.
    for path, closed in ((folder.parent, 0o022), (folder, 0o077)):
        try:
            if make and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.mkdir(mode=0o700)
            info = path.lstat()
            if make and stat.S_ISDIR(info.st_mode) and _own(info, 0) and not _own(info, closed):
                path.chmod(0o700)  # the user's own folder, left open (an older version's, a umask): closed
                info = path.lstat()
        except OSError:
            return None
        if not stat.S_ISDIR(info.st_mode) or not _own(info, closed):
            return None
    return folder


def _read_entry(path: Path) -> str:
    """An entry's text: a regular file of this user's, not a link, and not over MAX_ENTRY_BYTES."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or not _own(info) or info.st_size > MAX_ENTRY_BYTES:
            raise ValueError(f"{path} is no entry of this user's")
        return file.read(MAX_ENTRY_BYTES + 1).decode("utf-8")


def _digest(path: str | Path) -> str:
    """A file's SHA-256, read in chunks: a bot project may hold model files of gigabytes."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _bot_project(config: Mapping[str, str]) -> Path:
    configured = config.get(f"{NAMESPACE}:botProject") or str(DEFAULTS.get("botProject", ""))
    path = Path(configured)
    return path if path.is_absolute() else REPOSITORY / path


def _folder_files(config: Mapping[str, str]) -> list[str]:
    """Every file of the program's folders and the bot project, sorted; of the bot's own .venv, the
    RECORD of each installed distribution (which modules it provides: images/project_imports.py). Paths
    as text: a Path of each of some 750 files, compared and made relative, cost a check 0.01 s."""
    found: set[str] = set()
    bot = _bot_project(config)
    for folder in [*(REPOSITORY / name for name in FOLDERS), bot]:
        if folder.is_file():
            found.add(str(folder))
            continue
        for root, folders, files in os.walk(folder):
            folders[:] = [name for name in folders if name not in SKIPPED]
            found.update(os.path.join(root, name) for name in files if not name.endswith((".pyc", ".pyo")))
    found.update(map(str, (bot / ".venv" / "lib").glob("python3*/site-packages/*.dist-info/RECORD")))
    return sorted(found)


def image_contexts(registrations: Iterable[Registration]) -> list[dict[str, Any]]:
    """Each image's build context as the mocks hash it into the image's digest (which a dispatcher's
    BOT_IMAGE holds): its `context` and `dockerfile` inputs, and the hash they gave."""
    from images.docker_build_model import image_context_hash
    from stacks.tools.mocks import unwrap

    found = []
    for registration in registrations:
        if registration.type == IMAGE_TYPE:
            inputs = unwrap({key: registration.inputs.get(key) for key in ("context", "dockerfile")})
            # The mocks hashed the context when the image registered (stacks/tools/mocks.py): that hash is
            # the one the run's answer came from, and hashing the bot's folder again costs a tenth of a second.
            made = registration.outputs.get("contextHash")
            found.append({"inputs": inputs,
                          "hash": made if isinstance(made, str) else image_context_hash(inputs, PROGRAM.parent)})
    return found


def _contexts_unchanged(contexts: list[dict[str, Any]]) -> bool:
    """Every recorded build context hashes as it did (the provider model's own hash: its files, its
    .dockerignore, its Dockerfile)."""
    from images.docker_build_model import image_context_hash

    return all(image_context_hash(context["inputs"], PROGRAM.parent) == context["hash"] for context in contexts)


def _name(stack: str, overrides: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The entry's file name: what selects it, not what validates it. Pulumi's SDK reads a key the stack
    file leaves out from PULUMI_CONFIG_<KEY> and PULUMI_CONFIG (pulumi/runtime/config.py get_config):
    those variables select the entry too (hashed into its name, never kept)."""
    lock = REPOSITORY / "uv.lock"
    pulumi_config = sorted((name, value) for name, value in environ.items()
                           if name == CONFIG_VARIABLE or name.startswith(CONFIG_VARIABLE + "_"))
    selector = json.dumps({"version": CACHE_VERSION, "stack": stack, "overrides": sorted(overrides.items()),
                           "python": sys.version, "lock": _digest(lock) if lock.is_file() else "",
                           "sdks": _installed(("pulumi", *PROVIDER_PACKAGES)), "environment": pulumi_config})
    return f"{stack}-{hashlib.sha256(selector.encode()).hexdigest()[:32]}.json"


def _installed(distributions: Iterable[str]) -> dict[str, str]:
    """The installed version of each (a venv not synced to uv.lock has other SDKs than it names)."""
    found = {}
    for name in distributions:
        try:
            found[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            found[name] = ""
    return found


def _inputs(stack: str, config: Mapping[str, str], modules: Iterable[Path]) -> dict[str, str]:
    """Path (relative to the checkout when inside it) -> digest of every input file."""
    files = {str(stack_file(stack)), str(PROJECT_FILE), *_folder_files(config), *map(str, modules)}
    inside = os.path.join(REPOSITORY, "")
    return {path.removeprefix(inside): _digest(path) for path in sorted(files) if os.path.isfile(path)}


def files_read(stack: str, config: Mapping[str, str]) -> dict[str, str]:
    """The digests of the files a run reads before it imports anything of theirs (the stack file, Pulumi.yaml,
    the program's folders and the bot project), taken before the run: `store` keeps these, so a file
    edited while the program ran is seen as changed by the next check."""
    return _inputs(stack, config, ())


def imported_modules() -> list[Path]:
    """The checkout's modules this process imported (those outside FOLDERS among them: botchannel/, bot/)."""
    found, folders = [], dict[str, str]()
    inside = os.path.join(REPOSITORY, "")  # compared as text: a Path of each of some 2,000 modules cost 0.03 s
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and (real := _real(file, folders)).startswith(inside) and ".venv" not in real.split(os.sep):
            found.append(Path(real))
    return found


def _real(file: str, folders: dict[str, str]) -> str:
    """os.path.realpath(file), each folder resolved once (`folders`, shared by the calls): a process of the
    program imports thousands of modules from a few hundred folders, and realpath checks every part of a path."""
    folder, name = os.path.split(file)
    path = os.path.join(_real_folder(folder, folders), name)
    return os.path.realpath(path) if os.path.islink(path) else path


def _real_folder(folder: str, folders: dict[str, str]) -> str:
    """os.path.realpath(folder), from its parent's (kept in `folders`): one check of its own name, not one of
    every part of its path again (0.01 s over a program's few hundred folders)."""
    if (real := folders.get(folder)) is None:
        parent, name = os.path.split(folder)
        if name in ("", ".", "..") or not os.path.isabs(folder):  # a root, or a path realpath must normalise
            real = os.path.realpath(folder)
        else:
            path = os.path.join(_real_folder(parent, folders), name)
            real = os.path.realpath(path) if os.path.islink(path) else path
        folders[folder] = real
    return real


def load(stack: str, config: Mapping[str, str], overrides: Mapping[str, str],
         environ: Mapping[str, str] = os.environ) -> list[DispatcherEnv] | None:
    """The stored environments, or None on any miss (absent, corrupt, another version, an input changed)."""
    folder = _private_folder(environ, make=False)
    if folder is None:
        return None
    try:
        entry = json.loads(_read_entry(folder / _name(stack, overrides, environ)))
        if entry.get("version") != CACHE_VERSION:
            return None
        recorded: dict[str, str] = entry["inputs"]
        modules = [REPOSITORY / name for name in recorded if not any(
            name.startswith(folder + "/") for folder in FOLDERS)]
        if _inputs(stack, config, modules) != recorded or not _contexts_unchanged(entry["contexts"]):
            return None
        return [DispatcherEnv(str(env["resource"]), {str(k): str(v) for k, v in env["plain"].items()},
                              frozenset(str(name) for name in env["masked"]),
                              {str(k): str(v) for k, v in env["platform"].items()}) for env in entry["envs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # a corrupt, half-written or foreign entry is no answer: the program runs


def store(stack: str, config: Mapping[str, str], overrides: Mapping[str, str], envs: list[DispatcherEnv],
          registrations: Iterable[Registration] = (), environ: Mapping[str, str] = os.environ, *,
          read: Mapping[str, str] | None = None) -> None:
    """Keep `envs` (plain values and masked names only) for the next run, with the inputs of the run
    that gave them (its `registrations`' image contexts among them; `read`: files_read's digests from
    before the run, which stand for those files); a folder that cannot be written leaves the check as it
    was, uncached."""
    entry: dict[str, Any] = {
        "version": CACHE_VERSION,
        "inputs": {**_inputs(stack, config, imported_modules()), **(read or {})},
        "contexts": image_contexts(registrations),
        "envs": [{"resource": env.resource, "plain": env.plain, "masked": sorted(env.masked),
                  "platform": dict(env.platform)} for env in envs]}
    folder = _private_folder(environ, make=True)
    if folder is None:
        return  # a folder others may write: no answer is kept there (nor read back)
    try:
        _prune(folder)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".json")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(entry, file)
        os.replace(temporary, folder / _name(stack, overrides, environ))  # whole or absent, never half-written
    except OSError:
        Path(temporary).unlink(missing_ok=True)


def _prune(folder: Path, now: float | None = None) -> None:
    """Entries not written for MAX_AGE_DAYS (another uv.lock's, a --config tried once) and a write's
    leftovers after an hour go: the folder never grows without bound."""
    now = time.time() if now is None else now
    for path in folder.glob("*.json"):  # pathlib's `*` matches the leftovers' leading dot too
        age = 3600 if path.name.startswith(".entry-") else MAX_AGE_DAYS * 86400
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < now - age:
                path.unlink()
