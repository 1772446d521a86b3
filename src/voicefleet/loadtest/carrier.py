"""What a phone-mode run needs of the dispatcher, said before any call is placed: Pipecat's Twilio,
Telnyx and Plivo serializers hang a call up through the carrier's REST API, so the bot refuses to
start without the account's credentials in its environment (docs/phone.md; Exotel's needs none). A
local dispatcher's `/healthz` says which carriers' credentials its bots lack (`bots_lack`); another
does not know its bots' secrets."""

from __future__ import annotations

from typing import Any

NEEDED = {"twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"), "telnyx": ("TELNYX_API_KEY",),
          "plivo": ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN")}
WHERE = "docs/phone.md#trying-it-locally"


def carrier_check(transport: str, health: dict[str, Any]) -> tuple[str | None, bool]:
    """`(line to print before the run, whether the run may go on)`; no line for a WebRTC run."""
    names = NEEDED.get(transport)
    if names is None:
        return None, True
    needed = " and ".join(names)
    lacking = health.get("bots_lack")
    if not isinstance(lacking, dict) or not isinstance(lacking.get(transport), list):
        return (f"voicefleet: phone calls: the bot needs {needed} in its environment (its bot secrets); this "
                f"dispatcher does not say whether it has them: a call without them ends bot_failed ({WHERE})"), True
    missing = [str(name) for name in lacking[transport]]
    if missing:
        return (f"voicefleet: phone calls need {' and '.join(missing)} in the bots' environment, which this "
                f"dispatcher does not give them: set them where it runs and name them in LOCAL_BOT_ENV, then "
                f"restart it ({WHERE})"), False
    return f"voicefleet: phone calls: the dispatcher gives its bots {needed}", True
