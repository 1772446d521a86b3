"""The limits a guesser of runtime keys' secrets meets: wrong secrets counted, and checks under way.

A secret id is public (lists, the audit trail, the secret's own prefix), so wrong secrets are counted
per id and client group, per id across addresses, and those that cost a scrypt per id; past a limit
the caller answers 429 rather than checking. Checks under way count as failures until they finish, so
a burst of wrong secrets sent at once costs no more scrypts than one sent in turn, and caps on them
(per id and in all) refuse a new one rather than queue it. dispatcher/api/runtime_keys.py asks these
limits before each check; docs/security.md says what a guesser meets.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Container
from typing import Any

from dispatcher.api.guess_limits import WindowCounts
from dispatcher.errors import ApiError

# Wrong secrets for one id from one client group, in a window: past this many, this replica stops
# checking new ones for that id (a secret it verified before still answers from the cache). Bounds the
# CPU a guesser can make it burn.
FAILURES_PER_WINDOW, FAILURE_WINDOW_SECONDS = 20, 60.0
# The same across every address, so rotating addresses does not lift it: generous, since a guess its
# check rules out costs a SHA-256 only, and the real secret (it passes the check) is not held back by it.
FAILURES_PER_ID_PER_WINDOW = 1000
# Secrets that pass an id's check yet prove wrong (a scrypt each): only someone who knows the check can
# make them, so they are few for one id across all addresses; past this many in a window, secrets of
# that id not verified here before are answered 429 (the cache still answers the real one).
SCRYPT_FAILURES_PER_ID = 10
# Scrypts under way, for one id and in all: past these a new one is refused (429) rather than queued, so
# a flood never builds a queue that delays every other runtime key's first check.
SCRYPTS_PER_ID, SCRYPTS_IN_FLIGHT = 2, 4
WARNINGS_PER_WINDOW = 10  # log lines about guessers a window, all of them together
# Scrypts against revoked secrets' kept hashes, for all revoked ids together, in a window: telling a
# revoked secret's holder so is a courtesy, so its cost is bounded however many secrets were revoked
# (each one more id to forge check-passing secrets for) and whether their records have a check. Past
# it, a revoked id answers as an unknown one does (401, no scrypt) until the window moves on.
REVOKED_SCRYPTS_PER_WINDOW = 20

Guesser = tuple[str, str]  # (secret id, client group): whose wrong secrets are counted together


class WrongSecretLimits:
    """Wrong secrets counted over a window and the scrypts under way, with the 429s they lead to."""

    def __init__(self, most: int, clock: Callable[[], float], log: logging.Logger) -> None:
        """`most`: guessers remembered at once; `log`: where a guesser held back is told (rate-limited)."""
        self._clock, self._log = clock, log
        # Wrong secrets: by guesser (secret id, client group), by id, and those that cost a scrypt, by id.
        self._failures = WindowCounts(FAILURE_WINDOW_SECONDS, most, clock)
        self.told = WindowCounts(FAILURE_WINDOW_SECONDS, most, clock)  # guessers logged this window
        self._warnings = WindowCounts(FAILURE_WINDOW_SECONDS, 1, clock)  # log lines this window, in all
        self._revoked_scrypts = WindowCounts(FAILURE_WINDOW_SECONDS, 1, clock)  # against revoked ids, in all
        # Checks under way (by the token's SHA-256): the same token presented again meanwhile waits for
        # that one scrypt, and a guesser's checks under way count against its limit as failures do.
        self._checking: dict[bytes, asyncio.Future[str]] = {}
        self._checking_per_guesser: dict[Guesser, int] = {}
        self._checking_per_id: dict[str, int] = {}

    def keep(self, secret_ids: Container[str]) -> None:
        """Forgets the counts of every secret id not in `secret_ids` (revoked ones)."""
        self._failures.keep(lambda key: key[1] in secret_ids)  # type: ignore[index]
        self.told.keep(lambda key: key[0] in secret_ids)  # type: ignore[index]

    def under_way(self, key: bytes) -> asyncio.Future[str] | None:
        """The check of the token whose SHA-256 is `key`, when one is under way."""
        return self._checking.get(key)

    def ruled_out(self, guesser: Guesser) -> None:
        """A secret its id's check rules out (no scrypt): 429 past a limit, else counted."""
        if self._failures.count(("id",) + guesser[:1]) >= FAILURES_PER_ID_PER_WINDOW:
            raise self._too_many(guesser, ("id", guesser[0]), "from any address")
        self.limit(guesser)
        self.failed(guesser, scrypt=False)

    def scrypt_allowed(self, guesser: Guesser, *, checked: bool) -> None:
        """429 unless a scrypt may start for `guesser`; `checked`: its record has a check, which the
        secret passed (else the secret counts against the guesser's own limit)."""
        secret_id = guesser[0]
        if checked:
            scrypts = self._failures.count(("scrypt", secret_id))
            if scrypts + self._checking_per_id.get(secret_id, 0) >= SCRYPT_FAILURES_PER_ID:
                raise self._too_many(guesser, ("scrypt", secret_id), "that pass its check")
        else:
            self.limit(guesser)
        if self._checking_per_id.get(secret_id, 0) >= SCRYPTS_PER_ID or len(self._checking) >= SCRYPTS_IN_FLIGHT:
            raise ApiError(429, "key_checks_busy", "this replica is checking as many new secrets as it takes at "
                           "once: try again in a second", retry_after=1.0)

    def revoked_scrypt_taken(self) -> bool:
        """Whether a scrypt against a revoked secret's hash may start now (counted when it may)."""
        if self._revoked_scrypts.count("all") >= REVOKED_SCRYPTS_PER_WINDOW:
            return False
        self._revoked_scrypts.add("all")
        return True

    def started(self, key: bytes, guesser: Guesser, digest: str, checking: asyncio.Future[str],
                matches: Callable[[str, str], bool]) -> None:
        """A scrypt under way for `guesser`: counted until it ends, then a failure unless `matches`
        its result and the record's `digest`."""
        self._checking[key] = checking
        self._checking_per_guesser[guesser] = self._checking_per_guesser.get(guesser, 0) + 1
        self._checking_per_id[guesser[0]] = self._checking_per_id.get(guesser[0], 0) + 1

        def done(finished: asyncio.Future[str]) -> None:
            # The check under way becomes a failure in the same step: no moment where it counts as neither.
            if finished.cancelled() or finished.exception() is not None or not matches(finished.result(), digest):
                self.failed(guesser, scrypt=True)
            self._checking.pop(key, None)
            _less(self._checking_per_guesser, guesser)
            _less(self._checking_per_id, guesser[0])

        checking.add_done_callback(done)

    def limit(self, guesser: Guesser) -> None:
        """429 when `guesser` (one id, one client group) sent too many wrong secrets this window."""
        tried = self._failures.count(("guess",) + guesser) + self._checking_per_guesser.get(guesser, 0)
        if tried >= FAILURES_PER_WINDOW:
            raise self._too_many(guesser, ("guess",) + guesser, "from this address")

    def failed(self, guesser: Guesser, *, scrypt: bool) -> None:
        """A wrong secret from `guesser`, counted for it, for its id and (when it cost one) as a scrypt."""
        self._failures.add(("guess",) + guesser)
        self._failures.add(("id", guesser[0]))
        if scrypt:
            self._failures.add(("scrypt", guesser[0]))

    def _too_many(self, guesser: Guesser, counted: tuple[str, ...], whence: str) -> ApiError:
        now = self._clock()
        oldest = self._failures.oldest(counted)
        wait = max(1.0, (oldest + FAILURE_WINDOW_SECONDS - now) if oldest is not None else FAILURE_WINDOW_SECONDS)
        if not self.told.count(guesser) and self._warnings.count("all") < WARNINGS_PER_WINDOW:
            self.told.add(guesser)
            self._warnings.add("all")
            self._log.warning("too many wrong secrets in %.0f s for runtime key %s %s (%s): answered 429 until "
                              "the window moves on", FAILURE_WINDOW_SECONDS, guesser[0], whence,
                              guesser[1] or "an unknown address")
        return ApiError(429, "too_many_wrong_secrets", f"too many wrong secrets for this key {whence}: try "
                        f"again in {math.ceil(wait)} s with the right one", retry_after=wait)


def _less(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
