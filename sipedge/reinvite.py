"""What the edge answers a trunk's re-INVITE that PJSIP would answer badly. PJSIP negotiates a
re-INVITE's offer itself (hold and back, a codec change between μ-law and A-law, a session timer's
refresh: docs/sip.md#re-invites), but an offer without G.711 fails its negotiation with
`500 SDP negotiation failed`; the edge answers `488 Not Acceptable Here` first (RFC 3261 §14.2),
and the call goes on as it was. (PJSUA sends 488 whatever refusal onCallRxReinvite sets: 500 and
403 set there both went out as 488; what matters is refusing before PJSIP negotiates.)"""

from __future__ import annotations

import re

NOT_ACCEPTABLE = 488
_G711_TYPES = frozenset({"0", "8"})  # the static payload types of PCMU and PCMA (RFC 3551)
_G711_NAMES = re.compile(r"^a=rtpmap:\d+\s+(PCMU|PCMA)/8000", re.IGNORECASE | re.MULTILINE)


def offer_refusal(sdp: str) -> int | None:
    """488 for an offer (SDP) with no audio stream the edge can take (G.711 μ-law or A-law, not
    disabled with port 0); None for one PJSIP negotiates, or no offer at all (PJSIP then offers)."""
    if not sdp.strip():
        return None
    for section in re.split(r"^(?=m=)", sdp, flags=re.MULTILINE)[1:]:
        fields = section.split("\n", 1)[0].split()
        if len(fields) < 4 or fields[0] != "m=audio" or fields[1] == "0":
            continue
        if _G711_TYPES & set(fields[3:]) or _G711_NAMES.search(section):
            return None
    return NOT_ACCEPTABLE
