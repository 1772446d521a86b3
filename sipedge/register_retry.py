"""When the edge registers a trunk again after its registrar refused: what PJSUA does not retry itself.

PJSUA schedules a new REGISTER only after a timeout or a server's trouble (408, 480, 500, 502, 503, 504
and any 6xx: pjsua_acc.c `regc_cb`), every `retryIntervalSec` (the trunk's `registrar_retry_seconds`, 30 s
unless set). Any other refusal (403 Forbidden, 404 Not Found, a 401 its credentials could not answer) ends the
account's registration until something registers it again: without this, a trunk refused once (its
registrar's misconfiguration, since fixed) would take no inbound call until the edge restarted. The edge asks
again itself, slowly (a registrar that refuses us is not to be hammered): after the same interval, doubling up
to 30 minutes, never sooner than the answer's Retry-After, and from the interval again once a REGISTER
succeeds.

PJSUA may also refuse to send a REGISTER at all: `Account.setRegistration` raises, and no `onRegState` tells it.
Where the registrar's URI, or the transport it names, is one PJSIP cannot use, that lasts until the edge's
file is fixed: the edge does not ask again. Any other such refusal passes (no network interface up yet, a
REGISTER still pending: PJSIP_EBUSY): the edge asks again on the same schedule. A registrar whose name does
not resolve, or a send that fails, PJSUA tells as an answer (502, 503) and retries itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 30 * 60.0
# The final answers PJSUA retries on its own (pjsua_acc.c regc_cb; 6xx too): the edge leaves those to it.
PJSUA_RETRIES = frozenset({408, 480, 500, 502, 503, 504})
# What PJSUA raises, telling no answer, where the registrar (or the account's own URI, made from it) cannot be
# used as written: PJSIP 2.15.1 pjsua_acc.c initialize_acc, pjsua_regc_init, pjsua_acc_get_uac_addr; sip_reg.c
# pjsip_regc_init; sip_transport.c pjsip_tpmgr_find_local_addr2 (no transport of the URI's kind: the edge opens
# UDP over IPv4, and TLS with tls_port). pjsip/include/pjsip/sip_errno.h numbers them.
PJSIP_ENOROUTESET = 171005  # not a sip: or sips: URI
PJSIP_EINVALIDURI = 171039
PJSIP_EINVALIDSCHEME = 171040
PJSIP_EURITOOLONG = 171043
PJSIP_EUNSUPTRANSPORT = 171060
PJSIP_ETPNOTSUITABLE = 171064
UNUSABLE_REGISTRAR = frozenset({PJSIP_ENOROUTESET, PJSIP_EINVALIDURI, PJSIP_EINVALIDSCHEME, PJSIP_EURITOOLONG,
                                PJSIP_EUNSUPTRANSPORT, PJSIP_ETPNOTSUITABLE})
_RETRY_AFTER = re.compile(r"^retry-after[ \t]*:[ \t]*(\d+)", re.IGNORECASE | re.MULTILINE)


def pjsua_retries(code: int) -> bool:
    return code in PJSUA_RETRIES or 600 <= code < 700


def retry_after(message: str) -> float | None:
    """The seconds a response's Retry-After asks for (RFC 3261 20.33: delta-seconds, then an optional comment
    and parameters), read from its head; None where it has none (or there is no response: a timeout)."""
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    found = _RETRY_AFTER.search(head)
    return float(found.group(1)) if found else None


def backoff(failures: int, asked: float | None = None, base: float = RETRY_BASE_SECONDS) -> float:
    """The wait before the edge's `failures`-th REGISTER in a row after a refusal: doubling from `base` up to
    the cap, and at least what the registrar asked (Retry-After), which the cap bounds as well."""
    doubling = base * float(1 << min(max(failures - 1, 0), 16))
    return min(RETRY_CAP_SECONDS, max(doubling, asked or 0.0))


@dataclass
class RegisterRetry:
    """One registering account's refusals in a row, and the retry it has pending (its `generation`: a retry
    scheduled before a later answer is stale when it comes due)."""

    base: float = RETRY_BASE_SECONDS  # the first wait (the trunk's registrar_retry_seconds)
    failures: int = 0
    generation: int = 0

    def answered(self, code: int, message: str = "") -> float | None:
        """The registrar's final answer to a REGISTER (`message`: the response as received): the seconds until
        the edge registers again itself, or None (registered, or a failure PJSUA retries on its own)."""
        self.generation += 1  # whatever was pending is superseded by this answer
        if 200 <= code < 300:
            self.failures = 0
            return None
        if code < 200 or pjsua_retries(code):
            return None
        self.failures += 1
        return backoff(self.failures, retry_after(message), self.base)

    def not_sent(self, status: int) -> float | None:
        """PJSUA raised `status` rather than send a REGISTER, telling no answer: the seconds until the edge asks
        again, or None where the registrar cannot be used as written (UNUSABLE_REGISTRAR)."""
        self.generation += 1
        if status in UNUSABLE_REGISTRAR:
            return None
        self.failures += 1
        return backoff(self.failures, base=self.base)

    def due(self, generation: int) -> bool:
        """Whether a retry scheduled at `generation` still stands (no answer came since)."""
        return generation == self.generation
