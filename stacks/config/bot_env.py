"""The bot's environment as a stack sets it: the names voicefleet sets on every bot itself (which
`botSecrets` may not set) and OpenTelemetry's, which a stack with a collector sets.

Kept free of Pulumi, like stacks/config/carriers.py, so `python -m stacks.import_pcc` runs with the
project's default packages (no Pulumi SDK) before a team has chosen a cloud.
"""

from __future__ import annotations

# Names the platform sets on the bot itself: a user secret with one of them would silently lose.
RESERVED_ENV_NAMES = frozenset({
    "BOT_CHANNEL_TOKEN", "BOT_CHANNEL_URL", "BOT_FILE", "BOT_TRANSPORT", "BOT_MODELS_DIR",
    "MAX_SESSION_SECONDS", "DAILY_API_KEY", "DISPATCHER_API_KEYS", "DISPATCHER_ADMIN_KEYS", "PATH", "PYTHONPATH",
    "HOME",
    "BOT_TURN_TRANSPORT",  # the Cloud Run job's (stacks/gcp/bot_job.py)
})
_RESERVED_PREFIXES = ("VOICEFLEET_", "ECS_", "AWS_", "GCE_", "TURN_", "REDIS_")


def reserved_env_name(name: str) -> bool:
    """A variable voicefleet sets on the bot itself, which botSecrets may not set."""
    return name in RESERVED_ENV_NAMES or name.startswith(_RESERVED_PREFIXES)


OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
