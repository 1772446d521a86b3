"""A user's bot project folder, read before anything is built: what it is, which Pipecat it locks.

The folder has the layout `pipecat init` and Pipecat Cloud use: `bot.py` (Pipecat's
`async def bot(runner_args)`) plus its dependencies, either `pyproject.toml` + `uv.lock` or a
`requirements.txt`. The image build (images/bot.Dockerfile) installs exactly those dependencies;
this module runs first, in the Pulumi program, so a project the build could not serve fails at
`pulumi preview` with one message that says what to change, not minutes into an image build.

Optional build settings live in the project's own pyproject.toml, under `[tool.voicefleet]`
(docs/bring-your-bot.md): `exclude-packages` (locked packages the bot never imports, left out of
the image to keep it small). A `bake.py` at the project's root is the model-baking hook: the
image build runs it once with the project's dependencies, network allowed, and the runtime stage
keeps what it wrote under `BOT_MODELS_DIR`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from bot.no_bot_advice import RECIPE  # where the wrapper for a script's `main` is shown
from images.bot_entry import CONTRACT, ENTRY_POINT, bot_tree, known_shape, lacks_bot, main_found
from images.bot_transports import (
    IMAGE_LEAVES_OUT,
    TRANSPORT_PACKAGES,
    BuiltTransport,
    carriers_answered,
    imported_at_module_level,
    leaves_out,
    transports_built,
)
from images.lock_closure import needing, packages_of
from images.project_imports import ModuleImport, imported_modules
from images.source_file import MAX_DEPENDENCIES_BYTES, MAX_LOCK_BYTES, SourceRefused, read_project_file

# The Pipecat versions voicefleet's host (`python -m bot`) is written against: the runner
# argument types with `session_id`, PipelineWorker/WorkerRunner, the universal LLM context. The
# project's own development lock is the lower bound (every test runs it); a 2.x may change the
# runner contract itself. The image build runs the host's `--check` with the project's own
# Pipecat, so a version inside the range that still breaks the host fails the build, not a call.
SUPPORTED_RANGE = ">=1.14.0,<2"
SUPPORTED_PIPECAT = SpecifierSet(SUPPORTED_RANGE)
PIPECAT = "pipecat-ai"
BOT_FILE = "bot.py"
BAKE_FILE = "bake.py"
# Without it the host cannot run at all: onnxruntime runs the Silero VAD the image verifies. A
# transport's package is required only of a project whose bot.py builds that transport
# (images/bot_transports.py): a phone-only project locks no daily-python, and needs none.
REQUIRED_PACKAGES = {"onnxruntime": "silero"}
# What a Pipecat extra brings, for a requirements.txt (which names extras, not the closure).
EXTRA_PACKAGES = {"silero": "onnxruntime", "daily": "daily-python", "webrtc": "aiortc", "websocket": "fastapi"}
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class BotProjectError(ValueError):
    """The folder is not a bot project the image build can serve; the message says what to change."""


@dataclass(frozen=True)
class BotProject:
    path: Path
    kind: str  # "uv" (pyproject.toml + uv.lock) or "requirements" (requirements.txt)
    pipecat_version: Version
    exclude_packages: tuple[str, ...] = ()
    has_bake: bool = False
    # What its images can carry: each transport whose package the lock has (daily-python, aiortc, fastapi).
    transports: tuple[str, ...] = ("daily",)
    built: tuple[str, ...] = ()  # the transports bot.py builds (images/bot_transports.py); () unknown
    imported: tuple[BuiltTransport, ...] = ()  # the transports whose module bot.py imports at module level
    carriers: tuple[str, ...] = ()  # the carriers bot.py names (create_transport keys, serializers it imports)
    # The modules the project's own code imports (images/project_imports.py), by top-level name.
    imports: Mapping[str, ModuleImport] = field(default_factory=dict)

    def leaves_out(self, image: str) -> tuple[str, ...]:
        """The transport packages the `image` ("bot", "bot-webrtc") leaves out of this project's lock."""
        return leaves_out(image, self.imported)

    def images(self, *, webrtc: bool) -> tuple[str, ...]:
        """The bot images built for this project: the Daily image ("bot", which also serves the WebSocket
        transport's phone calls) unless its bot.py builds SmallWebRTC only, and the SmallWebRTC image
        ("bot-webrtc") when `webrtc` (a stack's TURN relay; for images/ci/build.sh, a lock with aiortc)."""
        daily = not self.built or any(transport in self.built for transport in ("daily", "websocket"))
        return (*(("bot",) if daily else ()), *(("bot-webrtc",) if webrtc else ()))

    def keeps(self, image: str) -> BuiltTransport | None:
        """The module-level import that makes `image` keep the other transport's packages, if any."""
        transport = IMAGE_LEAVES_OUT[image][0]
        return next((built for built in self.imported if built.name == transport), None)

    @property
    def dependency_files(self) -> tuple[str, ...]:
        return ("pyproject.toml", "uv.lock") if self.kind == "uv" else ("requirements.txt",)


def read(path: Path) -> BotProject:
    """Read and check a project folder (raises BotProjectError naming the file and the fix)."""
    if not path.is_dir():
        raise BotProjectError(f"{path} is not a folder (a bot project holds bot.py and its dependencies)")
    if not (path / BOT_FILE).is_file():
        raise BotProjectError(f"{path} has no {BOT_FILE}: the project's entry point is bot.py with "
                              "`async def bot(runner_args)` (Pipecat's runner contract)")
    try:
        tree = bot_tree(path / BOT_FILE)
    except SourceRefused as refused:
        raise BotProjectError(str(refused)) from None
    if lacks_bot(tree) and known_shape(tree) is None:
        main = main_found(tree)
        found = f"; it has `{main}`" if main else ""
        raise BotProjectError(f"{path / BOT_FILE} defines no `{ENTRY_POINT}`{found}: the bot host calls `{CONTRACT}` "
                              "(Pipecat's runner contract). Add it at the file's top level, handing "
                              f"runner_args (its room, its body) to what your script's main() runs ({RECIPE})")
    pyproject = _toml(path / "pyproject.toml") if (path / "pyproject.toml").is_file() else None
    if (path / "uv.lock").is_file():
        if pyproject is None:
            raise BotProjectError(f"{path} has uv.lock but no pyproject.toml: keep both (uv writes the lock from it)")
        kind, packages = "uv", _uv_lock_packages(path / "uv.lock")
        present = set(packages)
    elif (path / "requirements.txt").is_file():
        kind, (packages, present) = "requirements", _requirements(path / "requirements.txt")
    elif pyproject is not None:
        raise BotProjectError(f"{path} has pyproject.toml but no uv.lock: run `uv lock` there and keep uv.lock "
                              "with the project (the image installs exactly the locked versions)")
    else:
        raise BotProjectError(f"{path} has no dependencies: add pyproject.toml + uv.lock (`uv init`, `uv add "
                              "pipecat-ai[daily,silero]`) or a requirements.txt")
    source = "uv.lock" if kind == "uv" else "requirements.txt"
    version = packages.get(PIPECAT)
    if version is None:
        raise BotProjectError(f"{path / source} does not lock {PIPECAT}: the bot needs Pipecat "
                              f"({SUPPORTED_RANGE})")
    if version not in SUPPORTED_PIPECAT:
        raise BotProjectError(f"{path / source} locks {PIPECAT} {version}; voicefleet's bot host supports "
                              f"{PIPECAT}{SUPPORTED_RANGE}. Move the project to a supported version (e.g. "
                              f"`uv add '{PIPECAT}{SUPPORTED_RANGE}'`) or use a voicefleet release that "
                              f"supports {version}")
    # pipecat-ai 1.14 itself requires onnxruntime; an older or trimmed lock may not have it.
    present |= {"onnxruntime"} if kind == "requirements" else set()
    for name, extra in REQUIRED_PACKAGES.items():
        if name not in present:
            raise BotProjectError(f"{path / source} has no {name}: add Pipecat's {extra} extra "
                                  f"(`{PIPECAT}[silero,…]`); the image loads Silero VAD at build time")
    built = transports_built(path / BOT_FILE)
    imports = imported_modules(path, BOT_FILE)
    _importable(path, imports)
    for transport in built:
        package, extra = TRANSPORT_PACKAGES[transport.name]
        if package not in present:
            raise BotProjectError(f"{path / BOT_FILE}:{transport.line} builds Pipecat's {transport.name} transport "
                                  f"({transport.evidence}) but {source} has no {package}: add Pipecat's {extra} "
                                  f"extra (`uv add '{PIPECAT}[{extra}]'`, which locks again)")
    return BotProject(path=path, kind=kind, pipecat_version=version,
                      exclude_packages=_exclude_packages(path, pyproject, packages, imports),
                      has_bake=(path / BAKE_FILE).is_file(),
                      transports=tuple(name for name, (package, _) in TRANSPORT_PACKAGES.items() if package in present),
                      built=tuple(transport.name for transport in built),
                      imported=imported_at_module_level(path / BOT_FILE),
                      carriers=carriers_answered(path / BOT_FILE), imports=imports)


def _importable(path: Path, imports: Mapping[str, ModuleImport]) -> None:
    """A src/ layout's package imports under `uv run`, which installs the project itself, and never in
    the image, which installs its dependencies only (images/install_project.sh) and runs bot.py with
    bot.py's folder alone on the path (bot/user_bot.py)."""
    for module, found in imports.items():
        inside = path / "src" / module
        if "." not in module and (inside.with_suffix(".py").is_file() or (inside / "__init__.py").is_file()):
            raise BotProjectError(f"{path / found.file}:{found.line} imports `{module}`, which is in "
                                  f"{path / 'src'}: the image installs the project's dependencies, not the project, "
                                  f"and puts only bot.py's folder on the path, so it would fail with No module "
                                  f"named '{module}'. Move src/{module} beside bot.py")


def _text(path: Path) -> str:
    """A dependency file at the project's root, read within bounds (images/source_file.py)."""
    bound = MAX_LOCK_BYTES if path.name == "uv.lock" else MAX_DEPENDENCIES_BYTES
    try:
        content = read_project_file(path, path.parent, bound, "more than a project's dependency file")
    except SourceRefused as refused:
        raise BotProjectError(str(refused)) from None
    except OSError as error:
        raise BotProjectError(f"cannot read {path}: {error.strerror}") from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BotProjectError(f"{path} is not UTF-8 (byte {error.start}): save it as UTF-8, as uv and pip "
                              "write it") from None


def _toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(_text(path))
    except tomllib.TOMLDecodeError as error:
        raise BotProjectError(f"{path} is not valid TOML: {error}") from None


def _uv_lock_packages(path: Path) -> dict[str, Version]:
    packages: dict[str, Version] = {}
    try:  # the parse images/lock_closure.py keeps: the plan's later reads of this lock (exclude-packages) reuse it
        entries = packages_of(_text(path).encode("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise BotProjectError(f"{path} is not valid TOML: {error}") from None
    for entry in entries:
        if isinstance(entry.get("name"), str) and isinstance(entry.get("version"), str):
            try:
                packages[canonicalize_name(entry["name"])] = Version(entry["version"])
            except InvalidVersion:
                continue  # a package without a release version (a path dependency, the project itself)
    return packages


def _requirements(path: Path) -> tuple[dict[str, Version], set[str]]:
    """(exact pins `name[extras]==version`, every package named or brought by a Pipecat extra).

    Pipecat must be pinned exactly: with no lock, only `==` says at preview time which version the
    build will install.
    """
    text = _text(path).replace("\\\n", " ")
    pins: dict[str, Version] = {}
    named: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = re.sub(r"\s--hash[= ]\S+", "", line).strip()
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise BotProjectError(f"{path}:{number} is not a requirement: {error}") from None
        exact = [spec for spec in requirement.specifier if spec.operator in ("==", "===")]
        name = canonicalize_name(requirement.name)
        named.add(name)
        if name == PIPECAT:
            named |= {EXTRA_PACKAGES[extra] for extra in requirement.extras if extra in EXTRA_PACKAGES}
        if len(exact) == 1 and "*" not in exact[0].version:
            pins[name] = Version(exact[0].version)
        elif name == PIPECAT:
            raise BotProjectError(f"{path}:{number} does not pin {PIPECAT} exactly ({line!r}): write "
                                  f"`{PIPECAT}[...]==<version>` so the build installs a known version")
    return pins, named


def _exclude_packages(path: Path, pyproject: dict[str, object] | None, locked: dict[str, Version],
                      imports: Mapping[str, ModuleImport]) -> tuple[str, ...]:
    tool = (pyproject or {}).get("tool", {})
    settings = tool.get("voicefleet", {}) if isinstance(tool, dict) else {}
    raw = settings.get("exclude-packages", []) if isinstance(settings, dict) else []
    where = f"{path / 'pyproject.toml'} [tool.voicefleet] exclude-packages"
    if not isinstance(raw, list) or not all(isinstance(name, str) and _PACKAGE_NAME.match(name) for name in raw):
        raise BotProjectError(f"{where} must be a list of package names")
    for name in raw:
        if canonicalize_name(name) in (PIPECAT, *REQUIRED_PACKAGES, "daily-python", "aiortc"):
            raise BotProjectError(f"{where} cannot leave out {name}: the bot host needs it")
        if canonicalize_name(name) not in locked:
            raise BotProjectError(f"{where} names {name}, which the lock does not have")
        if need := needing(path / "uv.lock", name, imports):
            failure = (f"No module named '{need.found.module}'" if need.through is None
                       else f"an error importing `{need.found.module}`, which needs {name}")
            raise BotProjectError(f"{where} leaves out {name}{f' through {need.through}' if need.through else ''}, "
                                  f"which {path / need.found.file}:{need.found.line} imports (`{need.found.module}`): "
                                  f"the image would fail with {failure}. "
                                  f"Remove {name} from exclude-packages (or the import)")
    if raw and not (path / "uv.lock").is_file():
        raise BotProjectError(f"{where} needs uv.lock (a requirements.txt is installed as it is)")
    return tuple(sorted(raw))


def main(argv: list[str] | None = None) -> int:
    """`python -m images.bot_project PATH [--exclude-packages]`: check a project as `pulumi preview` does.

    Prints one line about the project, or with `--exclude-packages` only its packages to leave out
    (images/ci/build.sh passes them to the build as BOT_EXCLUDE_PACKAGES). Exit 1 with the reason
    when the project cannot be built.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m images.bot_project", description=main.__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--exclude-packages", action="store_true")
    parser.add_argument("--images", action="store_true",
                        help="print the bot images built for it (the SmallWebRTC one when its lock has aiortc)")
    parser.add_argument("--webrtc", choices=("yes", "no"),
                        help="with --images: whether the stack has a TURN relay (its SmallWebRTC image), as a "
                             "stack decides it; unset, the lock decides")
    parser.add_argument("--leaves-out", choices=sorted(IMAGE_LEAVES_OUT),
                        help="print the transport packages that bot image leaves out (its build argument)")
    args = parser.parse_args(argv)
    try:
        project = read(args.path)
    except BotProjectError as error:
        print(f"bot project: {error}", file=sys.stderr)
        return 1
    if args.exclude_packages:
        print(" ".join(project.exclude_packages))
    elif args.images:
        webrtc = "webrtc" in project.transports if args.webrtc is None else args.webrtc == "yes"
        print(" ".join(project.images(webrtc=webrtc)))
    elif args.leaves_out:
        print(" ".join(project.leaves_out(args.leaves_out)))
    else:
        bake = "yes" if project.has_bake else "no"
        built = ", ".join(project.built) or "none named in bot.py"
        print(f"bot project {project.path}: {'+'.join(project.dependency_files)}, {PIPECAT} "
              f"{project.pipecat_version} (supported {SUPPORTED_RANGE}), transports built: {built}, "
              f"bake.py: {bake}")
        for image in IMAGE_LEAVES_OUT:
            kept = project.keeps(image)
            if kept is not None:
                print(f"the {image} image keeps {' '.join(IMAGE_LEAVES_OUT[image][1])}: {project.path / BOT_FILE}:"
                      f"{kept.line} imports Pipecat's {kept.name} transport ({kept.evidence}) at module level")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
