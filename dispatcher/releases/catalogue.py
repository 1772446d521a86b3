"""Which releases exist: what the deployment's configuration lists (the stack's `RELEASES`, or a
developer's `BOT_RELEASES`). Pulumi owns this list; traffic over it is the dispatcher's (traffic.py).

A release names what its provider launches per transport (`images`: an ECS task definition
revision, a GCE template, a Cloud Run job, an image by digest, locally a bot file), which carries
the settings that travel with it; a local release may add `env` (its `BOT_PYTHON`), and a cloud
release with `env` is refused rather than launched without it.
A deployment that configures none has one release, `default`, whose images are the provider's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.releases.names import DEFAULT_RELEASE, is_release_name, name_rule
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_text

ANY_TRANSPORT = "*"  # a release's reference for every transport its entry does not name
MAX_RELEASES = 20
DEFAULT_CANARY_PERCENT = 10


@dataclass(frozen=True)
class Release:
    name: str
    images: Mapping[str, str] = field(default_factory=dict)  # transport (or "*") → the provider's reference
    created: str | None = None  # when its stack built it (ISO 8601), for people
    env: Mapping[str, str] = field(default_factory=dict)  # settings that travel with it

    def image_for(self, transport: str) -> str | None:
        """What to launch for a `transport` session; None: the provider's own setting (`default`)."""
        return self.images.get(transport) or self.images.get(ANY_TRANSPORT)


@dataclass(frozen=True)
class Catalogue:
    releases: tuple[Release, ...]  # oldest first
    canary_percent: int = DEFAULT_CANARY_PERCENT  # what a release not seen before enters at
    first_weights: Mapping[str, int] = field(default_factory=dict)  # when nothing is stored yet

    def __post_init__(self) -> None:
        names = [r.name for r in self.releases]
        if not names:
            raise SettingsError("a deployment has at least one release")
        if len(set(names)) != len(names):
            raise SettingsError(f"release names must be unique: {', '.join(names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.releases)

    @property
    def generation(self) -> str:
        """How new this list is, to compare with another replica's: its newest release's `created`
        (a stack stamps each when first listed; ISO 8601 in UTC sorts as text). "" when unstamped."""
        return max((r.created or "" for r in self.releases), default="")

    @property
    def newest(self) -> Release:
        return self.releases[-1]

    def get(self, name: str) -> Release | None:
        return next((r for r in self.releases if r.name == name), None)

    @classmethod
    def single(cls) -> Catalogue:
        return cls((Release(DEFAULT_RELEASE),))

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, local: bool) -> Catalogue:
        stacked, developer = setting_text(env, "RELEASES"), setting_text(env, "BOT_RELEASES")
        if stacked and developer:
            raise SettingsError("set RELEASES (a stack's) or BOT_RELEASES (a local dispatcher's), not both")
        if developer:
            if not local:
                raise SettingsError("BOT_RELEASES lists local bot files: a cloud deployment's releases come "
                                    "from its stack (RELEASES)")
            return _bot_files(developer, setting_text(env, "RELEASE_WEIGHTS"))
        if stacked:
            return _stacked(stacked, local=local)
        return cls.single()


def _stacked(raw: str, *, local: bool) -> Catalogue:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"RELEASES is not JSON ({exc}); a stack writes it: run `pulumi up` again") from exc
    listed = data.get("releases") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not listed or len(listed) > MAX_RELEASES:
        raise SettingsError(f'RELEASES must be {{"releases": [...1-{MAX_RELEASES} releases], "canaryPercent": N}}')
    canary = data.get("canaryPercent", DEFAULT_CANARY_PERCENT)
    if not isinstance(canary, int) or isinstance(canary, bool) or not 0 <= canary <= 100:
        raise SettingsError(f"RELEASES: canaryPercent must be a whole number 0-100, not {canary!r}")
    releases = []
    for entry in listed:
        if not isinstance(entry, dict) or not is_release_name(entry.get("name")):
            raise SettingsError(f"RELEASES: {entry!r} has no valid name ({name_rule()})")
        images, env = entry.get("images", {}), entry.get("env", {})
        if not _strings(images) or not images or not _strings(env):
            raise SettingsError(f"RELEASES: release {entry['name']!r} needs `images`: "
                                '{"daily"|"webrtc"|"websocket"|"*": "<what its provider launches>"}')
        if env and not local:
            # A cloud machine is launched from its release's reference (a task definition, a template,
            # an image), which carries the bot's settings; `env` here would reach no bot.
            raise SettingsError(f"RELEASES: release {entry['name']!r} has `env`, which only a local release's "
                                "bot takes; a cloud release's settings are in what it launches (its image and the "
                                "stack's bot settings): remove `env` and run `pulumi up` with the new settings")
        created = entry.get("created")
        releases.append(Release(entry["name"], dict(images), created if isinstance(created, str) else None, dict(env)))
    return Catalogue(tuple(releases), canary_percent=canary)


def _strings(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())


def _bot_files(raw: str, weights: str) -> Catalogue:
    """`stable=bot.py,next=bot_v2.py@/path/to/venv/bin/python`: a bot file each, its Python optional."""
    releases = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        name, sep, where = part.partition("=")
        name = name.strip()
        if not sep or not is_release_name(name) or not where.strip():
            raise SettingsError(f"BOT_RELEASES: {part!r} is not NAME=BOT_FILE ({name_rule()}), "
                                "e.g. BOT_RELEASES=stable=bot.py,next=bot_v2.py")
        file, _, python = where.strip().partition("@")
        path = Path(file).expanduser().resolve()
        if not path.is_file():
            raise SettingsError(f"BOT_RELEASES: release {name!r}: {path} is not a file")
        env = {"BOT_PYTHON": python.strip()} if python.strip() else {}
        releases.append(Release(name, {ANY_TRANSPORT: str(path)}, env=env))
    catalogue = Catalogue(tuple(releases))
    first = _weights(weights, catalogue) if weights.strip() else {catalogue.releases[0].name: 100}
    return Catalogue(catalogue.releases, first_weights=first)


def _weights(raw: str, catalogue: Catalogue) -> dict[str, int]:
    weights: dict[str, int] = {}
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if catalogue.get(name.strip()) is None or not value.strip().isdigit() or int(value) > 100:
            raise SettingsError(f"RELEASE_WEIGHTS: {part!r} is not RELEASE=PERCENT for one of "
                                f"{', '.join(catalogue.names)} (percent 0-100)")
        weights[name.strip()] = int(value)
    if sum(weights.values()) != 100:
        raise SettingsError(f"RELEASE_WEIGHTS: the weights add up to {sum(weights.values())}, not 100")
    return weights
