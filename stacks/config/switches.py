"""The dispatcher's feature switches a stack turns on: each a boolean key, `true` writing its setting as
`1`, `false` (the default) leaving the setting out, so the dispatcher's own default (off) holds and
turning one off again is a dispatcher rollout and nothing more. Each reaches the dispatcher through
stacks/config/dispatcher_keys.py, on every cloud; its meaning is the setting's (docs/configuration.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from stacks.config.reader import Reader

# stack key -> the dispatcher's setting.
SWITCHES: Mapping[str, str] = {
    # A start may ask for `dailyRoomProperties.enable_dialout`: the bot dials phone numbers (it costs money).
    "dailyAllowDialout": "DAILY_ALLOW_DIALOUT",
    # A Twilio stream may be admitted by its upgrade's signature alone (a TwiML Bin naming /ws/twilio).
    "twilioSignedStreams": "TWILIO_SIGNED_STREAMS",
    # A session whose recording cannot be kept is refused (503) rather than run unrecorded.
    "recordingRequired": "RECORDING_REQUIRED",
    # A new release takes traffic only once its scenario suite passed on it (`releases smoke NAME --suite`).
    "releaseEvalRequired": "RELEASE_EVAL_REQUIRED",
}
ON = "1"


def load(cfg: Reader) -> dict[str, str]:
    """The settings of the switches that are on, setting -> `1`."""
    return {setting: ON for key, setting in SWITCHES.items() if cfg.boolean(key)}
