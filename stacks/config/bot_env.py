"""OpenTelemetry's variables as a stack sets them on the bot, when it has a collector.

Kept free of Pulumi, like stacks/config/carriers.py, so `python -m stacks.import_pcc` runs with the
project's default packages (no Pulumi SDK) before a team has chosen a cloud. Which names a team may
give its bot is decided in one place, dispatcher/machines/bot_variables.py.
"""

from __future__ import annotations

OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
