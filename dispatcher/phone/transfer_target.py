"""Where a call is handed, checked before anything changes: a phone number in E.164 (`+` and up to
15 digits, the first not 0) or a `sip:`/`sips:` URI, and the TwiML that makes Twilio ring it.

The TwiML is built here and nowhere else: `to` is escaped as XML text, so a target cannot add verbs
of its own to the call (a `</Number><Play>` in it stays characters of a number that does not exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from botchannel.transfer import SUMMARY_CHARS
from dispatcher.api_error import ApiError  # not dispatcher.errors: no FastAPI for `voicefleet config check`

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# user@host[:port][;params]: no spaces, quotes, angle brackets or XML-special characters. Of RFC 3261's
# URI parameters (§19.1.1) only those that keep the request going to `host` are taken: `transport` picks
# how, `user=phone` what the user part is. `maddr` sends the request to another address (past the allow
# list, which checks the host), `method` makes a REFER's target send another request, `ttl` and `lr` have
# no use here; any other parameter means what the far end decides, so none is taken.
SIP_PARAMS = r"(?:;(?:transport=(?:udp|tcp|tls|sctp)|user=(?:phone|ip)))*"
SIP_URI = re.compile(r"sips?:[A-Za-z0-9_.!~*'()%+\-]+@[A-Za-z0-9.\-]+(?::[0-9]{1,5})?(?i:" + SIP_PARAMS + ")")
MAX_TARGET_CHARS = 255
MAX_SUMMARY_CHARS = SUMMARY_CHARS  # what the bot says to the person of a warm transfer: said within its time
COLD, WARM = "cold", "warm"
WARM_WHERE = ("a warm transfer (the person briefed before the caller joins them) works on Twilio, Telnyx, Plivo "
              "and Daily dial-in calls and on calls through the SIP edge whose trunk has a termination_uri "
              "(docs/phone.md, docs/sip.md)")


@dataclass(frozen=True)
class TransferTarget:
    to: str
    mode: str = COLD
    summary: str | None = None  # a warm transfer's briefing, else the bot's own (bot/transfer.py)

    @property
    def is_sip(self) -> bool:
        return self.to.startswith(("sip:", "sips:"))

    def twiml(self, time_limit: int) -> str:
        """`<Response><Dial timeLimit=…><Number>…` (or `<Sip>`): Twilio ends the call's stream and rings
        `to`; the caller hears ringing, then the person. The call ends when either of them hangs up, or
        after `time_limit` seconds (else Twilio's own limit, hours, would bound what a call costs)."""
        noun = "Sip" if self.is_sip else "Number"
        return f'<Response><Dial timeLimit="{int(time_limit)}"><{noun}>{escape(self.to)}</{noun}></Dial></Response>'


def transfer_target(to: object, mode: object, summary: object = None) -> TransferTarget:
    """The request's target, or a 422 that says what is accepted."""
    if mode is None:
        mode = COLD
    if mode not in (COLD, WARM):
        raise ApiError(422, "invalid_mode", f"mode must be \"cold\" or \"warm\", not {str(mode)[:40]!r}")
    if summary is not None and mode != WARM:
        raise ApiError(422, "invalid_summary", "summary is the briefing of a warm transfer: send it with "
                       "\"mode\": \"warm\", or leave it out")
    if summary is not None and (not isinstance(summary, str) or not summary.strip()
                                or len(summary) > MAX_SUMMARY_CHARS or not speakable(summary)):
        raise ApiError(422, "invalid_summary", f"summary must be text of 1 to {MAX_SUMMARY_CHARS} characters, no "
                       "control characters but line breaks (what the bot says to the person before the caller "
                       "joins, said within its 20 s: shorten it), or left out for the bot's own")
    if not isinstance(to, str) or not to:
        raise ApiError(422, "invalid_target", "to is required: a phone number in E.164 (\"+14155550100\") "
                       "or a SIP URI (\"sip:desk@pbx.example.com\")")
    if to.startswith(("sip:", "sips:")) and ";" in to and len(to) <= MAX_TARGET_CHARS and not SIP_URI.fullmatch(to):
        raise ApiError(422, "invalid_target", f"to {to[:60]!r}: a SIP URI's parameters may be only ;transport=udp, "
                       "tcp, tls or sctp and ;user=phone or ip (others, as ;maddr=, could send the call to a host "
                       "that is not on PHONE_TRANSFER_TARGETS): name the host itself, as sip:desk@pbx.example.com")
    if len(to) > MAX_TARGET_CHARS or not (E164.fullmatch(to) or SIP_URI.fullmatch(to)):
        raise ApiError(422, "invalid_target", f"to {to[:40]!r} is neither a phone number in E.164 (\"+\" then up "
                       "to 15 digits, as \"+14155550100\") nor a SIP URI (\"sip:desk@pbx.example.com\")")
    return TransferTarget(to, str(mode), summary if isinstance(summary, str) else None)


def speakable(text: str) -> bool:
    """Printable text and line breaks, as UTF-8 can carry it (no lone surrogate)."""
    return all(c in "\n\t" or (c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF) for c in text)
