"""The store's one failure, apart from its client: what the process-memory stand-ins raise too, so the
stacks' tools that use them (the drain) import no Redis client."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store did not answer in time, or refused the connection."""
