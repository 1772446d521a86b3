"""Which of a speech-to-speech vendor's ways of ending a session a reported error is, if any.

A converged bot's session is the vendor's: once it is gone Pipecat carries on deaf and mute, and the
caller hears silence until the idle timeout. The host tells that end from the error the service
reports, by the vendor's documented codes (OpenAI's `session_expired`, a close of the socket; Gemini's
close of a resumption's set-up, a connection refused before the first one), and from what Pipecat
logged of Gemini's connections (a refused resumption looks like a bad set-up otherwise).
docs/converged.md lists the cases; the kinds are the timeline's `error` reasons.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bot.pipeline_errors import bounded

GEMINI_LOGGER = "pipecat.services.google.gemini_live.llm"
GEMINI_CLOSED = re.compile(r"Connection error \(failure \d+/\d+\): (?P<error>.*)", re.DOTALL)
_GEMINI_RESUMING = "Connecting to Gemini service with session_resumption_handle"
GEMINI_CONNECTED = "Connected to Gemini service"
# The websockets library's words for a closed connection: `received 1001 (going away) …; then sent …`.
_SOCKET_CLOSED = re.compile(r"\b(received|sent) \d{4} \(")
_HTTP_REFUSAL = re.compile(r"\bHTTP \d{3}\b")
_CLOSE_CODE = re.compile(r"^\d{4} ")  # google-genai's `1007 None. Request contains an invalid argument.`
VENDORS = {"OpenAIRealtimeLLMService": "OpenAI Realtime", "GeminiLiveLLMService": "Gemini Live",
           "GrokRealtimeLLMService": "xAI Grok Voice", "AzureRealtimeLLMService": "Azure OpenAI Realtime"}


class VendorEndKind(enum.StrEnum):
    CAP = "vendor_cap"  # the vendor's session reached its maximum length
    RESUMPTION_REFUSED = "vendor_resumption_refused"  # Gemini refused to resume past a connection's end
    UNREACHABLE = "vendor_unreachable"  # no connection at the start: refused, unresolvable, timed out
    REFUSED = "vendor_refused"  # the vendor refused the session's set-up at the start (key, model)
    CLOSED = "vendor_closed"  # the vendor closed the session mid-call for another reason

    @property
    def what(self) -> str:
        return _WHAT[self]


_WHAT = {
    VendorEndKind.CAP: "ended the session at its maximum duration",
    VendorEndKind.RESUMPTION_REFUSED: "refused to resume the session on a new connection",
    VendorEndKind.UNREACHABLE: "could not be reached at the session's start",
    VendorEndKind.REFUSED: "refused the session at its start",
    VendorEndKind.CLOSED: "closed the session",
}


@dataclass(frozen=True)
class VendorEnd:
    kind: VendorEndKind
    service: str  # the processor or task that reported it (`OpenAIRealtimeLLMService#0`)
    detail: str  # the timeline's words: the vendor, the case, then the service's own report

    @property
    def processor(self) -> str:
        """The service's processor (`OpenAIRealtimeLLMService#0`), whichever of its tasks reported it."""
        return self.service.split("::", 1)[0]

    @property
    def unreachable(self) -> bool:
        return self.kind in (VendorEndKind.UNREACHABLE, VendorEndKind.REFUSED)


class VendorWatch:
    """One session's vendor: what Pipecat logged of its connections, and the end once decided."""

    def __init__(self) -> None:
        self.connected = False  # Gemini: a connection was set up
        self.resuming_after: str | None = None  # Gemini: the close a resumption under way follows
        self._closed: str | None = None
        self.ended: VendorEnd | None = None

    def logged(self, message: str) -> None:
        """A line of Pipecat's Gemini Live service (`GEMINI_LOGGER`)."""
        if (closed := GEMINI_CLOSED.fullmatch(message)) is not None:
            self._closed = closed["error"]
        elif message.startswith(_GEMINI_RESUMING):
            self.resuming_after = self._closed or "its connection ended"
        elif message.startswith(GEMINI_CONNECTED):
            self.connected, self.resuming_after, self._closed = True, None, None

    def judge(self, detail: str) -> VendorEnd | None:
        """The vendor's end `detail` (`<processor>: <error>`, bot/pipeline_errors.py) tells of, if any."""
        name, _, text = detail.partition(": ")
        service = name.split("#", 1)[0]
        if service.endswith("RealtimeLLMService"):  # OpenAI's protocol: Azure's and xAI's services too
            kind = _openai(name, text)
        elif service == "GeminiLiveLLMService":
            kind = self._gemini(name, text)
        else:
            return None
        if kind is None:
            return None
        said = f"{VENDORS.get(service, service.removesuffix('LLMService'))} {kind.what}"
        if kind is VendorEndKind.RESUMPTION_REFUSED:
            said += f" (after {self.resuming_after})"
        return VendorEnd(kind, name, bounded(f"{said}: {detail}"))

    def _gemini(self, name: str, text: str) -> VendorEndKind | None:
        if name.endswith("::_connection_task_handler"):  # its connect failed: nothing reconnects after it
            if self.resuming_after is not None:
                return VendorEndKind.RESUMPTION_REFUSED
            if not self.connected:
                return VendorEndKind.REFUSED if _CLOSE_CODE.match(text) else VendorEndKind.UNREACHABLE
            return VendorEndKind.CLOSED
        if text.startswith(("Max consecutive failures", "Send error")):
            return VendorEndKind.CLOSED
        return None


def _openai(name: str, text: str) -> VendorEndKind | None:
    if "session_expired" in text:
        return VendorEndKind.CAP
    if text.startswith("Error connecting"):
        return VendorEndKind.REFUSED if _HTTP_REFUSAL.search(text) else VendorEndKind.UNREACHABLE
    if name.endswith("::_receive_task_handler") or _SOCKET_CLOSED.search(text):
        return VendorEndKind.CLOSED
    return None  # another `error` event (a refused field): the session goes on
