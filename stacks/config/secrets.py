"""What goes into a stack's secret store: every secret config value the stack has, by variable name.

Each value stays a Pulumi secret Output; the components write them into Secrets Manager / Secret
Manager and hand them to the dispatcher and bots only by reference.
"""

from __future__ import annotations

from collections.abc import Collection

import pulumi

from stacks.config.channel import channel_secrets
from stacks.config.dispatcher_keys import secret_settings
from stacks.config.model import Settings
from stacks.config.regions import secrets as region_secrets
from stacks.config.sip_edge import secrets_of as sip_edge_secrets
from stacks.config.store import store_secrets
from stacks.config.turn import turn_secrets


def stored_secrets(settings: Settings, *, store: bool, store_password: bool,
                   sip_edge_url: pulumi.Input[str] | None = None) -> dict[str, pulumi.Output[str]]:
    """Environment variable name -> secret value: the dispatcher's keys (its clients' and its admin
    surface's), the bot's, the TURN relay's, the SIP edge's,
    the channel's, with a store (`store`) its password (`store_password`: an AWS store, which signs
    in with one) and the replicas' message key, the carriers', and the trace collector's headers and
    the webhook secret, and the regions' shared secret. `sip_edge_url`: the edge's control URL, which its
    credentials are derived for (stacks/config/sip_edge.py `secrets_of`)."""
    return {"DAILY_API_KEY": settings.secrets.daily_api_key,
            "DISPATCHER_API_KEYS": settings.secrets.dispatcher_api_keys,
            "DISPATCHER_ADMIN_KEYS": settings.secrets.dispatcher_admin_keys, **settings.secrets.bot,
            **turn_secrets(settings), **sip_edge_secrets(settings, sip_edge_url), **channel_secrets(settings),
            **store_secrets(settings, store=store, password=store_password), **settings.secrets.phone,
            **settings.secrets.observability, **region_secrets(settings.regions, settings.secrets.region_secret,
                                                              settings.secrets.region_accepted_secret)}


def dispatcher_secret_names(settings: Settings, stored: Collection[str], *made: str) -> tuple[str, ...]:
    """What the dispatcher takes by reference: the secret keys' settings of the table
    (stacks/config/dispatcher_keys.py) the stack stores (`stored`: it stores only what is set and used),
    the trace collector's headers (the OpenTelemetry SDK's, not a dispatcher setting), and `made`:
    what the stack makes from a resource (Azure's managed store's key). Each cloud hands them its way.
    Never the bot's own (botSecrets): one may name a setting of the table whose key is unset (a bot's own
    TWILIO_AUTH_TOKEN), which is the bot's, not the dispatcher's (stacks/config/bot.py check_names_apart
    refuses both set)."""
    own = [name for name in stored if name not in settings.secrets.bot]
    return (*secret_settings(settings.cloud, own), *settings.observability.dispatcher_secret_names(), *made)
