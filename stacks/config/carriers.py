"""What a stack needs to take a carrier's calls: each carrier's credential keys and the advice that
names them.

Kept free of Pulumi, like stacks/config/bot_env.py, so `python -m stacks.import_pcc` runs with the
project's default packages (no Pulumi SDK).
"""

from __future__ import annotations

# Each carrier's credential keys, by the name Pipecat gives the carrier (its `create_transport` key,
# its serializer's module): what a stack needs to take that carrier's own webhooks and streams.
CARRIER_CREDENTIALS = {"twilio": ("twilioAuthToken",), "telnyx": ("telnyxPublicKey",), "plivo": ("plivoAuthToken",),
                       "exotel": ("exotelApiKey", "exotelApiToken")}


def credential_advice(carriers: tuple[str, ...]) -> str:
    """What to set so a stack takes the calls of a bot that names `carriers` (images/bot_transports.py
    carriers_answered): each known carrier's own keys, and `phoneTokenSecret` for calls that start
    with `POST /start` (outbound calls, the generic WebSocket, a carrier voicefleet does not verify)."""
    known = [carrier for carrier in carriers if carrier in CARRIER_CREDENTIALS]
    others = [carrier for carrier in carriers if carrier not in CARRIER_CREDENTIALS]
    own = "; ".join(f"for {carrier.capitalize()}'s calls, " + " and ".join(
        f"`pulumi config set --secret {key} …`" for key in CARRIER_CREDENTIALS[carrier]) for carrier in known)
    placed = ("`pulumi config set --secret phoneTokenSecret …` for calls that start with POST /start (outbound "
              "calls, the generic WebSocket /ws/generic/…" + "".join(f", {name.capitalize()}" for name in others) + ")")
    return f"{own}; or, if it only takes calls you place or relay yourself, {placed}" if own else placed
