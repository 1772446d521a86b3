"""A key of DISPATCHER_API_KEYS as one model of a key with the runtime ones: each has a secret id, so
`keys list` shows it per secret and `keys revoke --secret-id ID` (or `keys revoke NAME`) revokes it at
runtime, at every replica and region, kept across restarts, as a runtime secret is revoked.

The id is 12 hex digits of a SHA-256 of the key's digest (the digest the settings already hold):
it names the key and opens nothing. A revocation is a revoked secret entry in the runtime record
(dispatcher/api/runtime_entries.py), which every region merges and none undoes; the configured key
is refused from then on, whatever the settings say, until it is taken out of them (a new key goes in
under the same name, or a runtime secret takes the name with `keys create NAME --another`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def settings_secret_id(key_hash: bytes) -> str:
    """The secret id of a key of DISPATCHER_API_KEYS, by its digest."""
    return hashlib.sha256(b"voicefleet settings key id v1:" + key_hash).hexdigest()[:12]


def revoked_ids(entries: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """Every secret id the runtime record holds revoked (runtime secrets' and settings keys' alike)."""
    return frozenset(i for i, entry in entries.get("secrets", {}).items() if isinstance(entry, Mapping)
                     and "revoked" in entry)
