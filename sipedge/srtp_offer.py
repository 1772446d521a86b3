"""A trunk whose SRTP is mandatory takes a call only over TLS, on its number's own account, where
PJSIP's SRTP is MANDATORY (sipedge/stack.py): PJSIP itself answers 488 to an offer it cannot key, so
the edge never judges an offer by its text. What the edge checks is where PJSIP received the INVITE
(sipedge/rx_transport.py, never the Via the sender wrote) and which account took it; any other
INVITE is answered `488 Not Acceptable Here` before any session (RFC 4568 §7.5).

A trunk whose SRTP is `"off"` shares the edge's own account with every other number, and PJSIP sets
SRTP per account: once another trunk has SRTP, that account's is optional, and PJSIP would answer an
SRTP offer (RTP/SAVP) to the `"off"` trunk's number with keys. So such an offer is refused 488 here
too: an `"off"` trunk's calls are plain RTP. So is a best-effort offer there (RTP/AVP with `a=crypto`,
which PJSIP's optional SRTP answers with keys of its own): the right answer, plain RTP without
`a=crypto`, cannot be had per call, since PJSUA2 never asks the edge about a call's SRTP (PJSUA's
`on_create_media_transport_srtp` is not wired to it). On an edge where no trunk has SRTP, PJSIP's
account keys nothing and answers such an offer with plain RTP itself."""

from __future__ import annotations

import re

from sipedge.config import Srtp

NOT_ACCEPTABLE = 488
_AUDIO = re.compile(r"^m=audio[ \t]+(\d+)[ \t]+(\S+)", re.MULTILINE)


def srtp_refusal(srtp: Srtp, over_tls: bool, srtp_mandatory_account: bool, keyed: bool = False,
                 keys: bool = False, account_keys: bool = False, doubt: str | None = None) -> str | None:
    """Why a request is refused 488 on a trunk with `srtp`, given whether PJSIP received it over TLS,
    whether PJSIP's account for it has SRTP mandatory, whether its offer is SRTP (`offers_srtp`), whether
    it carries keys (`offers_keys`), whether the edge's shared account would answer keys with its own
    (another trunk has SRTP) and why PJSIP might find keys the first two missed (`keys_doubt`); None when it
    is taken."""
    if srtp == "off" and keyed:
        return "the trunk's SRTP is off and the offer is SRTP (RTP/SAVP): its calls are plain RTP"
    if srtp == "off" and keys and account_keys:
        return ("the trunk's SRTP is off and the offer carries SRTP keys (a=crypto beside RTP/AVP, best effort), "
                "which PJSIP would answer with SRTP, as another trunk of the edge has SRTP: have the trunk offer "
                "plain RTP without a=crypto, or give it srtp = \"optional\"")
    if srtp == "off" and doubt is not None and account_keys:
        return (f"the trunk's SRTP is off and PJSIP, whose account for it has SRTP for another trunk, might key "
                f"the offer: {doubt}; have the trunk offer one plain RTP/AVP audio line without a=crypto")
    if srtp != "mandatory":
        return None
    if not over_tls:
        return "the trunk's SRTP is mandatory and the request came without TLS"
    if not srtp_mandatory_account:
        return "the trunk's SRTP is mandatory and the number has no SRTP account on this edge"
    return None


# The RTP profiles PJSIP 2.15.1 (the pjsua2 wheel's) can make a media channel for. For any other audio
# profile (UDP/TLS/RTP/SAVP, DTLS-SRTP's) its media init fails, and once a `pj.Call` exists for that
# INVITE the process dies in libHandleEvents (SIGSEGV); with no `pj.Call` PJSUA answers 480 and lives.
PLAYABLE_PROFILES = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")
_ANY_AUDIO = re.compile(r"^m=audio[ \t]+\S+[ \t]+(\S+)", re.MULTILINE | re.IGNORECASE)


def unplayable_profile(body: str) -> str | None:
    """The first audio profile anywhere in an INVITE's body that PJSIP cannot make media for (matched
    without regard to case), or None when every audio m-line is RTP/AVP, RTP/AVPF, RTP/SAVP or RTP/SAVPF."""
    for profile in _ANY_AUDIO.findall(body.replace("\r\n", "\n")):
        if profile.upper() not in PLAYABLE_PROFILES:
            return str(profile)
    return None


_CONTENT_TYPE = re.compile(r"^(?:content-type|c)[ \t]*:[ \t]*([^;\n]*)", re.MULTILINE | re.IGNORECASE)
_ANY_MEDIA = re.compile(r"^m=[^ \t\n]*[ \t]+(\S+)[ \t]+(\S+)", re.MULTILINE | re.IGNORECASE)
_ANY_CRYPTO = re.compile(r"^a=crypto[ \t]*:", re.MULTILINE | re.IGNORECASE)


def keys_doubt(message: str) -> str | None:
    """Why PJSIP might read SRTP keys into an INVITE (head and body as received) that `offers_srtp` and
    `offers_keys` pass, or None: PJSIP reads every body part and m= line, in any case, and a port written
    `port/count`, where those read the first audio line's text. So an "off" trunk's offer is refused when in
    doubt rather than read as PJSIP would."""
    head, _, body = message.replace("\r\n", "\n").partition("\n\n")
    types = [found.strip().lower() for found in _CONTENT_TYPE.findall(head)]
    if body.strip() and types != ["application/sdp"]:
        return f"its body is not a single application/sdp ({', '.join(types) or 'no Content-Type'})"
    for port, profile in _ANY_MEDIA.findall(body):
        if "SAVP" in profile.upper():
            return f"an m= line offers {profile[:40]}"
        if "/" in port:
            return "an m= line's port is written port/count"
    if _ANY_CRYPTO.search(body):
        return "it carries SDES keys (a=crypto)"
    return None


def offers_srtp(sdp: str) -> bool:
    """Whether an offer's first audio stream (not disabled with port 0) is SRTP (RTP/SAVP or RTP/SAVPF).
    Only ever used to refuse: a call answered with SRTP keeps it (PJSIP refuses an SRTP offer it
    cannot key), so a re-INVITE whose offer is plain RTP would drop it."""
    for port, profile in _AUDIO.findall(sdp.replace("\r\n", "\n")):
        if port != "0":
            return profile.upper() in ("RTP/SAVP", "RTP/SAVPF")
    return False


def offers_keys(sdp: str) -> bool:
    """Whether an offer's first audio stream (not disabled with port 0) carries SDES keys (`a=crypto`),
    whatever its profile: RTP/AVP with keys is best-effort SRTP, which an SRTP-optional PJSIP keys."""
    sections = re.split(r"^(?=m=)", sdp.replace("\r\n", "\n"), flags=re.MULTILINE)
    for section in sections:
        found = _AUDIO.match(section)
        if found is not None and found.group(1) != "0":
            return re.search(r"^a=crypto:", section, re.MULTILINE) is not None
    return False
