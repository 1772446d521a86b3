"""Which carriers' API credentials a provider's bots are given, for `/healthz` to say before a call
fails for want of them: Pipecat's serializers hang a call up through the carrier's REST API, so
each refuses to start without its carrier's credentials in the bot's environment (docs/phone.md).
Only a provider that builds the bots' environment itself (local) can tell; the others' bots get
their secrets from the stack, which the dispatcher does not see."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

CARRIER_CREDENTIALS = {
    "twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
    "telnyx": ("TELNYX_API_KEY",),
    "plivo": ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"),
}


@runtime_checkable
class ShowsBotVariables(Protocol):
    def bot_variables(self) -> frozenset[str]:
        """The names of the non-empty variables every bot is given from the host's environment."""
        ...


def lacking(given: frozenset[str]) -> dict[str, list[str]]:
    """Per carrier, the credentials its bots are not given (an empty list: all there). Names only."""
    return {carrier: [name for name in names if name not in given] for carrier, names in CARRIER_CREDENTIALS.items()}
