"""What Meta takes of the bot's SDP answer: WhatsApp accepts SHA-256 DTLS fingerprints only, and aiortc
(the bot's SmallWebRTC stack) lists SHA-384 and SHA-512 beside it, so those lines are dropped. The same
filter Pipecat's own WhatsApp client applies (pipecat/transports/whatsapp/client.py)."""

from __future__ import annotations

FINGERPRINT = "a=fingerprint:"
KEPT = "a=fingerprint:sha-256 "


def for_whatsapp(sdp: str) -> str:
    """`sdp` with every fingerprint but the SHA-256 one removed, in CRLF lines as RFC 8866 writes them.
    ValueError when no SHA-256 fingerprint is left: Meta would refuse the answer."""
    lines = [line for line in sdp.splitlines()
             if not (line.lower().startswith(FINGERPRINT) and not line.lower().startswith(KEPT))]
    if not any(line.lower().startswith(KEPT) for line in lines):
        raise ValueError("the bot's SDP answer has no SHA-256 DTLS fingerprint, the only kind WhatsApp accepts")
    return "\r\n".join(lines) + "\r\n"
