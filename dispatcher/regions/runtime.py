"""The runtime settings across regions: a capacity change or a key made or revoked in one region
reaches every other, on the releases' two ways (dispatcher/regions/releases.py):

- **pushed**: the replica where an admin made the change posts what it added, signed, to every peer
  (`POST /regions/runtime`, dispatcher/regions/pushing.py); the peer merges it into its store's
  record, audits it naming the region that made it, and nudges its replicas. Every version in a
  push names its signer (a region pushes the changes made in it), or it is refused 422.
- **pulled**: every region's state answer carries a digest of the settings it holds; a peer that
  holds others, and has not read these already, reads the whole record (`GET /regions/runtime`) and
  merges it. So a region unreachable during a change gets it at its first answered poll, from the
  region that made it or any that took it, and one that starts reads its peers before it serves.

Merging is the same in every region whatever the order (dispatcher/api/runtime_entries.py): the
newest version of each capacity value, a revocation over any secret it did not know of. The
settings are the deployment's: keys, because a client's key opens every region it reaches; capacity
values, because they are the caps an admin sets for the deployment's traffic, which the regions
share, each region applying them to its own machines (docs/regions.md "Runtime settings across
regions"). A key travels as its slow hash, never its secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.peers import Peer, Peers, region_client, signed_get
from dispatcher.regions.pushing import Pushes
from dispatcher.regions.signing import SKEW_SECONDS, RegionSigner
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.regions")

RUNTIME_PATH = "/regions/runtime"
STATE_FIELD = "runtime"  # the digest's field in a region's state answer
# The whole record, read only when a peer's digest differs: a thousand keys' hashes and the
# revoked ones' marks, more than a state answer's bound.
RECORD_BYTES = 8 * 1024 * 1024
RECORD_SECONDS = 2.0
# A record that could not be read (no answer in time, unsigned, too big) is asked for again this
# long after, not at each poll: each attempt may cost RECORD_BYTES and RECORD_SECONDS.
UNREAD_RETRY_SECONDS = 5.0


class RuntimeRecord(Protocol):
    """This region's runtime settings (dispatcher/api/runtime_settings.py)."""

    made: list[Callable[[dict[str, Any]], None]]

    def entries(self) -> dict[str, Any]: ...

    def digest(self) -> str: ...

    async def adopt(self, offered: Any) -> bool: ...


class RegionalRuntime:
    def __init__(self, peers: Peers, runtime: RuntimeRecord, check: Callable[..., Any],
                 client: HttpClient | None = None, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`check(raw, makers=, latest_ms=)`: the entries `raw` holds, or ValueError saying why."""
        self._peers = peers
        self._regions = peers.regions
        self._runtime = runtime
        self._check = check
        self._clock = clock
        self._pushes = Pushes(peers, client)
        self._signer = RegionSigner(self._regions)
        self._reader = client or region_client(RECORD_SECONDS, max_answer_bytes=RECORD_BYTES)
        self._read: dict[str, str] = {}  # peer → the digest of its record last merged here
        self._refused: str | None = None  # the last polled record refused here (warned about once)
        self._unread: dict[str, tuple[str, float]] = {}  # peer → the digest it failed to send, and when
        self._monotonic = monotonic
        if self._regions.several:
            runtime.made.append(self.changed)
            peers.answer_listeners.append(self.polled)

    def changed(self, delta: Mapping[str, Any]) -> None:
        """What an admin's change here added: pushed to every peer (a change of nothing is not)."""
        if not any(delta.values()):
            return
        self._pushes.to_every_peer(RUNTIME_PATH, {"entries": self._shown(delta)}, "a runtime settings change")

    @staticmethod
    def _shown(entries: Mapping[str, Any]) -> dict[str, Any]:
        """Entries as sent to a peer, an empty part left out: a region whose code predates a part
        (the names ever used) still takes the others."""
        return {part: held for part, held in entries.items() if held}

    def _latest_ms(self) -> int:
        # A version is its region's clock, which signed requests keep within SKEW_SECONDS of this one's.
        return int((self._clock() + SKEW_SECONDS) * 1000)

    async def offered(self, sender: str, payload: object) -> dict[str, Any]:
        """A peer's push, `sender` as its signature names it: merged here, or a clear refusal."""
        raw = payload.get("entries") if isinstance(payload, Mapping) else None
        try:
            entries = self._check(raw, makers={sender}, latest_ms=self._latest_ms())
        except ValueError as exc:
            raise ApiError(422, "invalid_runtime_record", f'send {{"entries": <the changes made in the signing '
                           f'region>}}: {exc}') from None
        try:
            adopted = await self._runtime.adopt(entries)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "this region's store does not answer: the change cannot be "
                           "kept; it is pulled again from its region's state", retry_after=1) from None
        if adopted:
            log.info("regions: runtime settings from %s merged", sender)
        return {"adopted": adopted, "digest": self._runtime.digest()}

    def state(self) -> dict[str, Any]:
        """This region's part of its state answer."""
        return {"digest": self._runtime.digest()}

    def record(self) -> dict[str, Any]:
        """Every entry this region holds (`GET /regions/runtime`)."""
        return {"entries": self._shown(self._runtime.entries()), "digest": self._runtime.digest()}

    async def polled(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        """A peer's state answer: its whole record read and merged when it holds other settings than
        this replica and they were not merged here already."""
        told = answer.get(STATE_FIELD)
        digest = told.get("digest") if isinstance(told, Mapping) else None
        if not isinstance(digest, str) or digest in (self._runtime.digest(), self._read.get(peer.name)):
            return
        failed = self._unread.get(peer.name)
        if failed is not None and failed[0] == digest and self._monotonic() - failed[1] < UNREAD_RETRY_SECONDS:
            return
        data, why = await signed_get(self._reader, self._signer, self._regions, peer.name, peer.url, RUNTIME_PATH,
                                     timeout=RECORD_SECONDS)
        if data is None:
            if failed is None or failed[0] != digest:  # said once per record
                log.warning("regions: %s's runtime settings could not be read (%s); asked again every %g s",
                            peer.name, why, UNREAD_RETRY_SECONDS)
            self._unread[peer.name] = (digest, self._monotonic())
            return
        self._unread.pop(peer.name, None)
        try:
            # Any region's name: a record may hold changes made before this deployment had regions.
            entries = self._check(data.get("entries") if isinstance(data, Mapping) else None,
                                  latest_ms=self._latest_ms())
            if await self._runtime.adopt(entries):
                log.info("regions: runtime settings read from %s merged", peer.name)
        except (StoreUnavailable, ApiError):
            return  # the store did not answer, or changes kept arriving: the next poll tries again
        except ValueError as exc:  # read twice a second: said once per record
            if digest != self._refused:
                self._refused = digest
                log.warning("regions: the runtime settings read from %s are not taken: %s", peer.name, exc)
        self._read[peer.name] = digest

    async def aclose(self) -> None:
        await self._pushes.aclose()
        await self._reader.aclose()
