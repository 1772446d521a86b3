"""What the stacks tell the dispatcher and its bots about observability: JSON log lines always, and,
when the stack config names them, where traces go (OpenTelemetry's standard variables) and where
lifecycle webhooks go.

    voicefleet:otelExporterOtlpEndpoint   the collector's OTLP/HTTP endpoint, https on 443 (the only
                                          port the stacks' egress rules open), for the
                                          dispatcher and every bot: OTEL_EXPORTER_OTLP_ENDPOINT
    voicefleet:otelExporterOtlpHeaders    secret: its headers (`api-key=…`), by reference only:
                                          OTEL_EXPORTER_OTLP_HEADERS
    voicefleet:webhookUrl                 the dispatcher's WEBHOOK_URL, https on 443 likewise
    voicefleet:webhookSecret              secret: its WEBHOOK_SECRET (`whsec_…`), by reference only
    voicefleet:dashboardEnabled           true: DASHBOARD_ENABLED=1, the dispatcher serves GET /dashboard

Both clouds' log pipelines read JSON lines as fields (CloudWatch Logs Insights, Cloud Logging's
`jsonPayload`), so the stacks set `LOG_FORMAT=json` on the dispatcher and the bots: a session's
lines are then one filter on `session_id` or `trace_id` away (docs/operations.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi

from stacks.config.bot_env import OTLP_ENDPOINT, OTLP_HEADERS
from stacks.config.derived import PROFILE_NAMES
from stacks.config.reader import Reader

LOG_ENV = {"LOG_FORMAT": "json"}
WEBHOOK_URL = "WEBHOOK_URL"
WEBHOOK_SECRET = "WEBHOOK_SECRET"  # noqa: S105 (a variable's name)
DASHBOARD_ENABLED = "DASHBOARD_ENABLED"
PROFILE = "VOICEFLEET_PROFILE"
# A URL the bots' environment carries through a GCE metadata list (`KEY=value,…`): no separator in it.
_URL = re.compile(r"^https?://[^\s,]+$")
# Where a credential goes instead of a URL's user and password.
_CREDENTIAL_INSTEAD = {
    "otelExporterOtlpEndpoint": "send it as a header: pulumi config set --secret otelExporterOtlpHeaders "
                                "'Authorization=Basic%20<base64 of user:password>'",
    "webhookUrl": "let the receiver check each payload's signature, made with webhookSecret "
                  "(docs/http-api.md, \"Lifecycle webhooks: what your receiver gets\")",
}


@dataclass(frozen=True)
class ObservabilitySettings:
    otlp_endpoint: str | None = None
    otlp_headers: bool = False  # the secret is set (its value is in Secrets.observability)
    webhook_url: str | None = None
    dashboard: bool = False
    profile: str = "dev"  # the stack's profile (stacks/config/derived.py), the dispatcher's VOICEFLEET_PROFILE

    def dispatcher_environment(self) -> dict[str, str]:
        """JSON logs, which no stack key sets; the collector, the webhook receiver, the dashboard and the
        profile are their keys' settings (stacks/config/dispatcher_keys.py). The dashboard's only when on
        and the profile's only when `prod`: unset is the dispatcher's default, so a stack without the key
        keeps the environment (and the revision) it had. Not the size: the stack hands the values it
        sizes itself, and VOICEFLEET_SIZE would also raise caps the stack holds per instance (Cloud
        Run's concurrency) and machine sizes it does not set."""
        return dict(LOG_ENV)

    def dispatcher_secret_names(self) -> tuple[str, ...]:
        """The collector's headers, which the OpenTelemetry SDK reads, not a setting of the dispatcher's own
        (WEBHOOK_SECRET is webhookSecret's, in stacks/config/dispatcher_keys.py)."""
        return (OTLP_HEADERS,) if self.otlp_headers else ()

    def bot_environment(self) -> dict[str, str]:
        """The bots export their spans to the same collector (their session's trace) and log JSON."""
        return {**LOG_ENV, **({OTLP_ENDPOINT: self.otlp_endpoint} if self.otlp_endpoint else {})}

    def bot_secret_names(self) -> tuple[str, ...]:
        return (OTLP_HEADERS,) if self.otlp_headers else ()


def load(cfg: Reader) -> tuple[ObservabilitySettings, dict[str, pulumi.Output[str]]]:
    """The settings, and the secrets that are set (env name -> value, an Output for the secret stores)."""
    endpoint = _url(cfg, "otelExporterOtlpEndpoint")
    webhook_url = _url(cfg, "webhookUrl")
    headers = cfg.secret("otelExporterOtlpHeaders", required=False)
    if headers is not None and endpoint is None:
        raise cfg.fail("otelExporterOtlpHeaders", "is set with otelExporterOtlpEndpoint, the collector they are for")

    def whsec(text: str) -> None:
        # The dispatcher's own rule (dispatcher/sessions/webhooks.py, which the Pulumi program cannot
        # import: it brings the store's client), checked here so a bad secret fails the preview.
        try:
            key = base64.b64decode(text.strip().removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not text.strip().startswith("whsec_") or len(key) < 24:
            raise cfg.fail("webhookSecret", "must be `whsec_` and at least 24 random bytes in base64")

    webhook_secret = cfg.secret("webhookSecret", required=False, check=whsec)
    if (webhook_url is None) != (webhook_secret is None):
        given, missing = ("webhookUrl", "webhookSecret") if webhook_url else ("webhookSecret", "webhookUrl")
        raise cfg.fail(given, f"is set together with {missing}, or neither is")
    secrets = {name: value for name, value in ((OTLP_HEADERS, headers), (WEBHOOK_SECRET, webhook_secret))
               if value is not None}
    settings = ObservabilitySettings(endpoint, headers is not None, webhook_url, cfg.boolean("dashboardEnabled"),
                                     cfg.string("profile", choices=PROFILE_NAMES))
    return settings, secrets


def _url(cfg: Reader, key: str) -> str | None:
    value = cfg.optional(key)
    if value is None:
        return None
    if not _URL.match(value):
        raise cfg.fail(key, f"must be an http(s) URL without spaces or commas (got {value!r})")
    try:
        parsed = urlsplit(value)
        credential = "@" in parsed.netloc
        port = None if credential else parsed.port
    except ValueError:
        raise cfg.fail(key, f"must be an https URL with a valid port (got {value!r})") from None
    if credential:  # not shown: the stack file, the dispatcher's and (the endpoint) every bot's env hold it plain
        raise cfg.fail(key, "holds a user or password before its host (user:password@), which the stack's config "
                            "and the dispatcher's (and, for the collector, every bot's) environment would show in "
                            "plain: remove it and " + _CREDENTIAL_INSTEAD[key])
    if parsed.scheme != "https" or port not in (None, 443):
        # The stacks' own egress rules: bots (stacks/aws/network.py, stacks/gcp/network.py) and the
        # AWS dispatcher (stacks/aws/balancer.py) may reach TCP 443 only, so a collector on :4318 or a
        # plain-http receiver would never be reached; over http a webhook's payload also goes in clear.
        raise cfg.fail(key, f"must be https on port 443 (or no port): the stack's egress rules let the dispatcher "
                            f"and the bots reach TCP 443 only (got {value!r}); put the collector or receiver "
                            f"behind an HTTPS endpoint on 443")
    return value
