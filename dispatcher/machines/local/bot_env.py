"""The environment a local bot inherits: an allow list, never the dispatcher's whole environment.

A bot runs the user's code and talks to strangers; the dispatcher's environment holds the
deployment secret, the API keys, the store's password and the carriers' tokens. So a local bot is
given only what a process needs on this host (`SYSTEM`, `SYSTEM_PREFIXES`), the bot host's own
settings (`HOST`), and the variables the user's bot reads, named in `LOCAL_BOT_ENV` (the local
counterpart of a stack's `botSecrets`); then its session's launch values (bot_environment.py).
A variable added to the dispatcher later is therefore withheld from bots until someone decides
otherwise, which a deny list could not promise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dispatcher.machines.bot_variables import dispatcher_own, refusal
from dispatcher.settings import SettingsError

# What any process on this host may need: where programs, libraries, certificates and the user's
# files are, the locale and time zone, the temporary directory, the outbound proxy.
SYSTEM = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    "VIRTUAL_ENV", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
})  # fmt: skip
SYSTEM_PREFIXES = ("LC_", "PYTHON", "OTEL_")  # locale categories, the interpreter's own, tracing


def credential_of_tracing(name: str) -> bool:
    """`OTEL_EXPORTER_OTLP_HEADERS` and its per-signal forms (`…_TRACES_HEADERS`): where a collector's
    API key goes. Not a deployment secret, but a key: a bot gets it only where LOCAL_BOT_ENV names it."""
    return name.startswith("OTEL_EXPORTER_OTLP_") and name.endswith("_HEADERS")


# The bot host's settings (docs/configuration.md, "The bot"), as `python -m bot` reads them.
HOST = frozenset({
    "BOT_FILE", "BOT_TRANSPORT", "BOT_IDLE_TIMEOUT_SECONDS", "BOT_CONNECT_TIMEOUT_SECONDS", "BOT_MAX_IDLE_SECONDS",
    "BOT_ICE_SERVERS", "BOT_LOG_LEVEL", "VOICEFLEET_ICE_LOOPBACK", "VOICEFLEET_AUDIO_JITTER_PREFETCH",
    "VOICEFLEET_TRACE", "LOG_FORMAT",
    "BOT_CHANNEL_CA_FILE",  # a wss:// channel's CA (BOT_CHANNEL_TLS_*): public, the dispatcher's own certificate's
    "RECORDING_ANNOUNCEMENT", "RECORDING_REDACT",  # the bot host plays and redacts: docs/recording.md
    # The Twilio account's region and edge, the dispatcher's own too: Pipecat's runner hangs up there, and the bot
    # host checks each is one DNS label (bot/environment_check.py), as a stack's bots get them (docs/phone.md).
    "TWILIO_REGION", "TWILIO_EDGE",
})  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_named(raw: str) -> tuple[str, ...]:
    """`LOCAL_BOT_ENV`: comma-separated variable names; one that is not the team's to give its bot
    (dispatcher/machines/bot_variables.py) is a configuration error, as in a stack's botSecrets."""
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    for name in names:
        if not _NAME.match(name):
            raise SettingsError(f"LOCAL_BOT_ENV: {name!r} is not an environment variable name")
        # The rule a stack's botSecrets follows, so a name the cloud refuses is refused here first.
        if (reason := refusal(name)) is not None:
            raise SettingsError(f"LOCAL_BOT_ENV: {reason}")
    return names


def allowed(name: str, named: Iterable[str]) -> bool:
    if dispatcher_own(name):
        return False
    if name in named:
        return True
    if credential_of_tracing(name):
        return False
    return name in SYSTEM or name in HOST or name.startswith(SYSTEM_PREFIXES)


def inherited(environ: Mapping[str, str], named: tuple[str, ...]) -> dict[str, str]:
    """The part of the dispatcher's environment a bot is given."""
    return {name: value for name, value in environ.items() if allowed(name, named)}
