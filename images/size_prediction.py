"""The bot image's size, predicted from the project's lock before anything is built.

uv.lock records every wheel of every locked package with its size. The wheels the build would
install (this platform's CPython 3.11 manylinux wheels, else a pure-Python one; the project's
`exclude-packages` and the image variant's left-out transport packages removed) sum to the
download; installed, a closure weighs about `INSTALLED_PER_WHEEL_BYTE` times that (measured on
voicefleet's own bot project, docs/images.md). The plan states it with the pull it costs every cold
start, and refuses, before `pulumi up`, an image over the stack's budget, naming the packages that
make it big and the slimming that keeps behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from images.bot_transports import IMAGE_LEAVES_OUT
from images.lock_closure import installed_names, locked_packages, needing
from images.project_imports import ModuleImport

if TYPE_CHECKING:
    from images.bot_project import BotProject

MB = 1_000_000
# Installed site-packages bytes per wheel byte: examples/parrot's Daily closure measured 340.3 MB
# installed in the built image (docs/images.md) from 97.6 MB of its locked linux/amd64 wheels (this
# module's sum: `uv run python -m images.size_prediction examples/parrot`).
INSTALLED_PER_WHEEL_BYTE = 340.3 / 97.6
# What a cold start downloads: registries serve gzip layers. The bot image built with buildah (stand-in
# bases, docs/images.md "Pull cost") measured 160.6 MB gzip in all, 111.9 MB of it the venv layer whose
# site-packages held 315.5 MB; the rest, 48.7 MB, is the base image and bot/.
GZIP_PER_INSTALLED_BYTE = 111.9 / 315.5
BASE_PULL_MB = 160.6 - 111.9
# The pull rate a cold start is costed at: a 413 MB image took 57 s on average from Fargate task create to
# start without SOCI (elasticscale.com/blog/reduce-aws-fargate-pull-times-with-soci, 2024). That time
# includes provisioning, so the rate is a floor and the seconds an upper estimate.
PULL_MB_PER_SECOND = 413 / 57
PULL_RATE_SOURCE = "the create-to-start rate of a measured 413 MB Fargate image, elasticscale.com 2024"
# What each image variant leaves out of the project's lock when bot.py does not import that transport
# at module level (images/bot_transports.py; a project's own: BotProject.leaves_out).
DAILY_LEAVES_OUT = IMAGE_LEAVES_OUT["bot"][1]
WEBRTC_LEAVES_OUT = IMAGE_LEAVES_OUT["bot-webrtc"][1]
# Platform tag fragments of the wheels the image installs, per build platform.
ARCHES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
# Slimming that keeps behaviour, for the packages that usually make an image big: the advice, and
# the packages it would leave out (never advised when the bot's own code imports one of them).
SLIMMING: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch's default Linux wheel pulls CUDA (nvidia-* packages): pin the CPU build from "
              "https://download.pytorch.org/whl/cpu ([tool.uv.sources] torch with that index) and lock again", ()),
    "opencv-python": ("Pipecat imports it only for SmallWebRTC's incoming video: list it in [tool.voicefleet] "
                      "exclude-packages if the bot sends no video", ("opencv-python",)),
    "opencv-python-headless": ("Pipecat imports it only for SmallWebRTC's incoming video: exclude-packages it if "
                               "unused", ("opencv-python-headless",)),
    "llvmlite": ("numba's compiler, used only by the resampy resampler: exclude-packages numba llvmlite resampy",
                 ("numba", "llvmlite", "resampy")),
    "numba": ("used only by the resampy resampler: exclude-packages numba llvmlite resampy",
              ("numba", "llvmlite", "resampy")),
}


@dataclass(frozen=True)
class Prediction:
    installed_mb: float
    wheels_mb: float
    largest: tuple[tuple[str, float], ...]  # (package, installed MB), largest first
    unknown: tuple[str, ...] = ()  # locked with no wheel for the platform: built from source, size unknown
    # The modules the bot project's own code imports (images/project_imports.py): never advised out.
    imports: Mapping[str, ModuleImport] = field(default_factory=dict)
    lock: Path | None = None  # the project's uv.lock: what its imported packages depend on

    @property
    def pull_mb(self) -> float:
        """The compressed image a cold start downloads: the base image plus this closure, gzip."""
        return BASE_PULL_MB + self.installed_mb * GZIP_PER_INSTALLED_BYTE

    @property
    def pull_seconds(self) -> float:
        return self.pull_mb / PULL_MB_PER_SECOND

    def pull_cost(self) -> str:
        return (f"a cold start pulls about {self.pull_mb:.0f} MB compressed, about {self.pull_seconds:.0f} s at "
                f"{PULL_MB_PER_SECOND:.1f} MB/s ({PULL_RATE_SOURCE})")

    def advice(self, limit: int = 5) -> str:
        """The biggest packages and, where one is known, the slimming that keeps behaviour."""
        big = ", ".join(f"{name} {mb:.0f} MB" for name, mb in self.largest[:limit])
        tips = [self._tip(name) for name, _ in self.largest[:limit] if name in SLIMMING]
        if any(name.startswith("nvidia-") for name, _ in self.largest[:limit]) and "torch" not in [
                name for name, _ in self.largest[:limit]]:
            tips.append(f"nvidia-*: {SLIMMING['torch'][0]}")
        return f"largest: {big}" + (f"; {'; '.join(tips)}" if tips else "")

    def _tip(self, name: str) -> str:
        advice, leaves_out = SLIMMING[name]
        used = next((need for package in leaves_out
                     if self.lock is not None and (need := needing(self.lock, package, self.imports))), None)
        if used is None:
            return f"{name}: {advice}"
        if used.through is None:
            return f"{name}: kept, the bot imports it ({used.found.where}: `{used.found.module}`)"
        return f"{name}: kept, {used.through} needs it and the bot imports that ({used.found.where}: " \
               f"`{used.found.module}`)"


def _wheel_matches(filename: str, arch: str) -> bool:
    if not filename.endswith(".whl"):
        return False
    _, _, python, abi, platform = filename[:-4].rsplit("-", 4)
    pure = platform == "any"
    cpython = python in ("cp311", "py3", "py311") or "cp311" in python.split(".") or abi == "abi3" or (
        "py3" in python.split("."))
    linux = pure or ("manylinux" in platform or "linux" in platform) and arch in platform
    return cpython and linux and "musllinux" not in platform


def predict(lock: Path, *, leave_out: tuple[str, ...] = (), platform: str = "linux/amd64",
            imports: Mapping[str, ModuleImport] | None = None) -> Prediction:
    arch = ARCHES[platform]
    left_out = {canonicalize_name(name) for name in leave_out}
    sizes: dict[str, int] = {}
    unknown: list[str] = []
    packages = locked_packages(lock)
    installed = installed_names(packages)
    for package in packages:
        name = canonicalize_name(str(package.get("name", "")))
        source = package.get("source", {})
        if name in left_out or not isinstance(source, dict) or "registry" not in source:
            continue  # the project itself, a path or git dependency
        if installed is not None and name not in installed:
            continue  # a dev group's, or an extra nobody asks for: not in the image
        wheels = [wheel for wheel in package.get("wheels", []) if isinstance(wheel, dict)]
        fitting = [wheel for wheel in wheels if _wheel_matches(str(wheel.get("url", "")).rsplit("/", 1)[-1], arch)]
        if fitting:
            sizes[name] = int(fitting[0].get("size", 0))
        elif not wheels:
            unknown.append(name)  # an sdist only: built at install, its size unknown here
        # else: wheels for other platforms only (pywin32 and the like): not installed on Linux
    ratio = INSTALLED_PER_WHEEL_BYTE
    largest = tuple(sorted(((name, size * ratio / MB) for name, size in sizes.items()), key=lambda item: -item[1]))
    total = sum(sizes.values())
    return Prediction(total * ratio / MB, total / MB, largest, tuple(sorted(unknown)), dict(imports or {}), lock)


def predict_image(project: BotProject, image: str = "bot", *, platform: str = "linux/amd64") -> Prediction:
    """The closure of a bot project's `image` ("bot" or "bot-webrtc") as its build installs it: the
    project's lock minus its exclude-packages and the transport packages that image leaves out."""
    return predict(project.path / "uv.lock", leave_out=(*project.exclude_packages, *project.leaves_out(image)),
                   platform=platform, imports=project.imports)


def main(argv: list[str] | None = None) -> int:
    """`python -m images.size_prediction PROJECT [--leave-out PKG ...]`: the predicted Daily closure."""
    import argparse

    from images.bot_project import read

    parser = argparse.ArgumentParser(prog="python -m images.size_prediction", description=main.__doc__)
    parser.add_argument("project", type=Path)
    parser.add_argument("--platform", default="linux/amd64", choices=sorted(ARCHES))
    args = parser.parse_args(argv)
    project = read(args.project)
    found = predict_image(project, platform=args.platform)
    print(f"{args.project}: wheels {found.wheels_mb:.1f} MB, predicted closure {found.installed_mb:.1f} MB; "
          f"{found.pull_cost()}; {found.advice()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
