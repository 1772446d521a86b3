"""An API key's default release (a tester's key always gets `staging`): `DISPATCHER_API_KEY_RELEASES`
names each key by its name (`name:key` in DISPATCHER_API_KEYS: every key of the name) or by the
start of its SHA-256, never by the key itself, so the setting holds no secret.
`printf %s "$KEY" | sha256sum | cut -c1-12` gives the part to write."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dispatcher.releases.names import is_release_name, name_rule
from dispatcher.settings import SettingsError
from voicefleet_settings.read import setting_text

MIN_PREFIX = 12


def key_defaults(env: Mapping[str, str], key_hashes: frozenset[bytes],
                 caller_of: Callable[[bytes], str], names: Mapping[str, str] | None = None) -> dict[str, str]:
    """Caller id → its default release, from `release=<key name>` or `release=<sha256 prefix>`
    entries. `names`: each key name's caller id."""
    defaults: dict[str, str] = {}
    names = names or {}
    for part in (p.strip() for p in setting_text(env, "DISPATCHER_API_KEY_RELEASES").split(",") if p.strip()):
        release, _, prefix = part.partition("=")
        release, prefix = release.strip(), prefix.strip().lower()
        if is_release_name(release) and prefix in names:
            defaults[names[prefix]] = release
            continue
        if not is_release_name(release) or len(prefix) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in prefix):
            raise SettingsError(f"DISPATCHER_API_KEY_RELEASES: {part!r} is not RELEASE=<a key name> or RELEASE=<the "
                                f"first {MIN_PREFIX}+ hex of the key's SHA-256> ({name_rule()}); "
                                "printf %s \"$KEY\" | sha256sum | cut -c1-12")
        matches = [h for h in key_hashes if h.hex().startswith(prefix)]
        if len(matches) != 1:
            raise SettingsError(f"DISPATCHER_API_KEY_RELEASES: {prefix} matches {len(matches)} of the "
                                "DISPATCHER_API_KEYS; give the start of one key's SHA-256")
        defaults[caller_of(matches[0])] = release
    return defaults


