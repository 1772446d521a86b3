"""Which region this dispatcher is, every region's public URL, and the secret regions share.

`REGION` (a name), `REGIONS` (`name=url,…`, every region, this one included) and `REGION_SECRET`
(at least 32 characters, the same everywhere) are set together or not at all: unset, the
dispatcher is one region exactly as without regions. Each mistake is refused at start-up with
one line naming it (docs/regions.md, "Setting up"). `REGION_ACCEPTED_SECRET`, only while the
secret changes, is the change's other secret: checked against, never signed with
(docs/regions.md, "Changing the regions' secret").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from dispatcher.settings import SettingsError, is_loopback

# Short and plain: a region's name travels in headers, answers and metric labels.
REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
TAG_CHARS = 4  # hex digits of a session id that name its region (dispatcher/sessions/ids.py)


def region_tag(name: str) -> str:
    """The first hex digits of every session id a region makes: the id says which region holds it,
    and stays 24 hex digits, which every provider's names and tags take."""
    return hashlib.sha256(b"voicefleet region:" + name.encode()).hexdigest()[:TAG_CHARS]
MIN_REGION_SECRET_CHARS = 32
VARIABLES = ("REGION", "REGIONS", "REGION_SECRET")
ACCEPTED_SECRET_VARIABLE = "REGION_ACCEPTED_SECRET"  # noqa: S105 - a variable's name, not a secret


@dataclass(frozen=True)
class Regions:
    """`here` is "" when the dispatcher runs as one region (no peers, nothing signed)."""

    here: str = ""
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    secret: bytes = field(default=b"", repr=False)
    accepted: bytes = field(default=b"", repr=False)  # during a change of secret, the other one

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """What a region's request or answer may be signed with: the secret, then the accepted one."""
        return (self.secret, self.accepted) if self.accepted else (self.secret,)

    @property
    def several(self) -> bool:
        return bool(self.here)

    @property
    def peers(self) -> dict[str, str]:
        """Every other region's URL, by name."""
        return {name: url for name, url in self.urls.items() if name != self.here}

    @property
    def by_tag(self) -> dict[str, str]:
        """Region names by the tag their session ids start with."""
        return {region_tag(name): name for name in self.urls}

    def holding(self, session_id: str) -> str | None:
        """The other region of this deployment that holds `session_id` (its id's first TAG_CHARS digits name
        it: dispatcher/sessions/ids.py); None when it is this region's, no region's, or there is one region."""
        region = self.by_tag.get(session_id[:TAG_CHARS])
        return region if region is not None and region != self.here else None

    def listing(self) -> str:
        """`REGIONS` in one canonical spelling: two regions configured alike list the same text."""
        return ",".join(f"{name}={url}" for name, url in sorted(self.urls.items()))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Regions:
        values = {name: env.get(name, "").strip() for name in VARIABLES}
        accepted = env.get(ACCEPTED_SECRET_VARIABLE, "").strip()
        if not any(values.values()):
            if accepted:
                raise SettingsError(f"{ACCEPTED_SECRET_VARIABLE} is set but REGION is not: it only accompanies "
                                    "REGION_SECRET during a change of that secret (docs/regions.md)")
            return cls()
        missing = [name for name, value in values.items() if not value]
        if missing:
            given = ", ".join(name for name in VARIABLES if name not in missing)
            raise SettingsError(f"{', '.join(missing)} must be set with {given} (a region needs its name, every "
                                "region's URL and the shared secret: docs/regions.md)")
        here = values["REGION"]
        if not REGION_NAME.fullmatch(here):
            raise SettingsError(f"REGION={here!r} is not a region name (a lowercase letter, then up to 19 "
                                "lowercase letters, digits or hyphens, e.g. eu or us-east)")
        urls = parse_regions(values["REGIONS"])
        if here not in urls:
            raise SettingsError(f"REGIONS does not list this region (REGION={here}): list every region, "
                                f"this one included, as name=url (it names {', '.join(sorted(urls))})")
        secret = values["REGION_SECRET"]
        if len(secret) < MIN_REGION_SECRET_CHARS:
            raise SettingsError(
                f"REGION_SECRET must be at least {MIN_REGION_SECRET_CHARS} characters (got {len(secret)}), the same "
                "in every region; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        _check_accepted(accepted, secret)
        return cls(here, MappingProxyType(urls), secret.encode(), accepted.encode())


def _check_accepted(accepted: str, secret: str) -> None:
    if accepted and len(accepted) < MIN_REGION_SECRET_CHARS:
        raise SettingsError(f"{ACCEPTED_SECRET_VARIABLE} must be at least {MIN_REGION_SECRET_CHARS} characters "
                            f"(got {len(accepted)}): it is the other secret of a change of REGION_SECRET")
    if accepted and accepted == secret:
        raise SettingsError(f"{ACCEPTED_SECRET_VARIABLE} is the same as REGION_SECRET: it holds the other secret "
                            "of the change (docs/regions.md, \"Changing the regions' secret\")")


def parse_regions(raw: str) -> dict[str, str]:
    """`name=url,…` → {name: url}; every region's dispatcher URL, https (http on loopback only)."""
    urls: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, url = (piece.strip() for piece in item.partition("="))
        if not sep or not name or not url:
            raise SettingsError(f"REGIONS: {item!r} is not name=url (e.g. eu=https://eu.voice.example.com)")
        if not REGION_NAME.fullmatch(name):
            raise SettingsError(f"REGIONS: {name!r} is not a region name (lowercase letters, digits, hyphens)")
        if name in urls:
            raise SettingsError(f"REGIONS names {name} twice")
        urls[name] = _region_url(name, url)
    if not urls:
        raise SettingsError("REGIONS lists no region: name=url,… for every region, this one included")
    tags: dict[str, str] = {}
    for name in urls:
        if (tag := region_tag(name)) in tags:  # one chance in 65,536 per pair: rename one
            raise SettingsError(f"REGIONS: {tags[tag]} and {name} share a session id tag; rename one of them")
        tags[tag] = name
    seen: dict[str, str] = {}
    for name, url in urls.items():
        if url in seen:
            raise SettingsError(f"REGIONS gives {seen[url]} and {name} the same URL {url}")
        seen[url] = name
    return urls


def _region_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (parts.scheme not in ("https", "http") or not host or parts.query or parts.fragment
            or parts.path not in ("", "/")):
        raise SettingsError(f"REGIONS: {name}={url} is not a dispatcher's base URL like https://{name}.voice.example.com")
    if parts.scheme == "http" and not is_loopback(host):
        raise SettingsError(f"REGIONS: {name}={url} must be https (what regions ask each other is signed, not hidden)")
    return f"{parts.scheme}://{parts.netloc}"
