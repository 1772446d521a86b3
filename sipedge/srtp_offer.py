"""A trunk whose SRTP is mandatory takes a call only over TLS with SRTP keys in its offer: the edge
answers any other INVITE `488 Not Acceptable Here` before any session (RFC 4568 §7.5). PJSIP's
account serves every trunk, so this per-trunk rule is the edge's."""

from __future__ import annotations

import re

from sipedge.config import Srtp

NOT_ACCEPTABLE = 488
_TOP_VIA = re.compile(r"^(?:Via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*(\w+)", re.IGNORECASE | re.MULTILINE)
_CRYPTO = re.compile(r"^a=crypto:", re.MULTILINE)


def srtp_refusal(srtp: Srtp, invite: str) -> str | None:
    """Why an INVITE (as received) is refused 488 on a trunk with `srtp`; None when it is taken."""
    if srtp != "mandatory":
        return None
    via = _TOP_VIA.search(invite)
    if via is None or via.group(1).upper() != "TLS":
        return "the trunk's SRTP is mandatory and the INVITE came without TLS"
    _, _, body = invite.replace("\r\n", "\n").partition("\n\n")
    if not _CRYPTO.search(body):
        return "the trunk's SRTP is mandatory and the offer holds no SRTP key (a=crypto)"
    return None
