"""A bot pod's env at admission (`pods` mode): the names the dispatcher writes, the values the stack derives.

A bot trusts its environment: a leaked dispatcher token that could add `HTTPS_PROXY`, `REQUESTS_CA_BUNDLE`,
`SSL_CERT_FILE` or an SDK's `*_BASE_URL` would have the bot send its keys (the bots' Secret's, by `envFrom`)
to a host of its own. So a container's env holds only what `pod_body` is given (dispatcher/machines/k8s/
provider.py `launch_env`, reserve.py's idle bots), each as a plain value with no newline (no `valueFrom`:
`pod_body` writes none, and a `fieldRef` to an annotation is a value of the pod maker's choosing):

- the values the stack derives, as `pod_body` writes them (`$` doubled): the channel's URL and what
  `told_bots` tells (the model service, the Twilio region, the log format; this `up`'s, or the last one's
  while its replicas roll), `BOT_IDENTITY=k8s`, the channel's CA at its one path, `BOT_IMAGE_DIGEST` the
  container's own image; the `OTEL_*` names are bot_trace_env.py's;
- a session's or an idle bot's own values (bot_environment.py SESSION_VARIABLES, the bot id, its channel
  credential): fixed names, whose values the dispatcher alone knows. With a bot channel (the stack always
  has one) that is its id, cap and transport, never its room, token or the caller's `body`
  (CHANNEL_DELIVERED): a pod holding one is refused. Without one the `body` is one of them, as JSON
  (VOICEFLEET_BODY), never a name of the caller's choosing;
- with an EKS role (botPermissions), what EKS's webhook adds (web_identity.py): the role, its token's path,
  the region.

A mutating webhook that adds any other variable has every bot refused, with this module's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from botchannel.contract import (
    CA_FILE_VARIABLE,
    CHANNEL_TOKEN_VARIABLE,
    CHANNEL_URL_VARIABLE,
    IDENTITY_VARIABLE,
    IMAGE_VARIABLE,
    MACHINE_ID_VARIABLE,
)
from dispatcher.machines.bot_environment import CHANNEL_DELIVERED, SESSION_VARIABLES
from dispatcher.machines.k8s.pods import CHANNEL_CA_FILE, unexpanded
from stacks.k8s.bot_trace_env import OTEL, admitted
from stacks.k8s.cel import literal, quoted
from stacks.k8s.pool_template import dispatcher_settings
from stacks.k8s.web_identity import WebIdentityVolume

OPEN = (*SESSION_VARIABLES, MACHINE_ID_VARIABLE, CHANNEL_TOKEN_VARIABLE)  # a session's or an idle bot's own
FIXED = {IDENTITY_VARIABLE: "k8s", CA_FILE_VARIABLE: CHANNEL_CA_FILE}  # whatever the stack's settings
# What EKS's webhook writes (amazon-eks-pod-identity-webhook pkg/handler/handler.go): its mount and the
# regional STS endpoint are the webhook's defaults; a region is a name, never a host.
EKS_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"  # noqa: S105 - a directory
EKS_REGIONS, EKS_REGION = ("AWS_REGION", "AWS_DEFAULT_REGION"), "^[a-z0-9]+(-[a-z0-9]+)*$"
# A line break: a value is one line (a newline would start another in whatever reads it as lines).
NEWLINE = "'[\\r\\n]'"


def session_names(environment: Mapping[str, str]) -> tuple[str, ...]:
    """The names of a session's or an idle bot's own values the dispatcher whose env is `environment` writes."""
    if environment.get(CHANNEL_URL_VARIABLE, "").strip():
        return tuple(name for name in OPEN if name not in CHANNEL_DELIVERED)
    return OPEN


def told_pins(environment: Mapping[str, str]) -> dict[str, str]:
    """The values the dispatcher whose env is `environment` gives every pod it makes, but the `OTEL_*` ones."""
    channel = environment.get(CHANNEL_URL_VARIABLE, "").strip()
    told = dispatcher_settings(environment).told_bots
    return {**({CHANNEL_URL_VARIABLE: channel} if channel else {}),
            **{name: value for name, value in told.items() if not name.startswith(OTEL)}}


def pinned(current: Mapping[str, str], last: Mapping[str, str], roles: Sequence[str],
           web_identity: WebIdentityVolume | None) -> dict[str, tuple[str, ...]]:
    """Each pinned name with the values a pod may carry, as it carries them: the dispatcher's `$` doubled
    (this `up`'s and the last one's), the webhook's as it writes them."""
    told = {name: tuple(unexpanded(value) for value in values)
            for name, values in admitted({**current, **FIXED}, last).items()}
    if web_identity is None:
        return told
    return {**told, "AWS_ROLE_ARN": tuple(roles), "AWS_STS_REGIONAL_ENDPOINTS": ("regional",),
            "AWS_WEB_IDENTITY_TOKEN_FILE": (f"{EKS_TOKEN_DIR}/{web_identity.path}",)}


PINNED_VARIABLE = "pinnedEnv"  # the policy's variable holding `pinned_table`: the checks stay short to read


def pinned_table(pins: Mapping[str, tuple[str, ...]]) -> str:
    """CEL: each pinned name with the values a pod may carry (the policy's `variables.pinnedEnv`)."""
    return "{" + ", ".join(f"{literal(name)}: {quoted(values)}" for name, values in pins.items()) + "}"


def allowed_env(sessions: Sequence[str], regions: bool) -> str:
    """CEL on a container `c`: every env entry a plain one-line value, of a name the dispatcher writes."""
    table = f"variables.{PINNED_VARIABLE}"
    named = [f"e.name in {quoted(sessions)}", f"e.name.startsWith({literal(OTEL)})",
             f"(e.name == {literal(IMAGE_VARIABLE)} && has(e.value) && e.value == c.image)",
             f"(e.name in {table} && has(e.value) && e.value in {table}[e.name])"]
    if regions:
        named.append(f"(e.name in {quoted(EKS_REGIONS)} && has(e.value) && e.value.matches({literal(EKS_REGION)}))")
    return (f"(!has(c.env) || c.env.all(e, !has(e.valueFrom) && (!has(e.value) || !e.value.matches({NEWLINE})) && "
            f"({' || '.join(named)})))")


def described(sessions: Sequence[str], pins: Mapping[str, tuple[str, ...]]) -> str:
    """The refusal's message: what a pod's env may hold, and the way out for a webhook's variables."""
    values = "; ".join(f"{name}: {' or '.join(listed)}" for name, listed in pins.items() if listed)
    return (f"a bot pod's env holds only the variables the dispatcher writes, each a plain value on one line (no "
            f"valueFrom): a session's own ({', '.join(sessions)}), {IMAGE_VARIABLE} its image, OTEL_* the trace "
            f"collector's, and the stack's as it gives them ({values}). A mutating webhook that adds others "
            "(a proxy, a CA bundle, an SDK's base URL) must leave the bots' namespace out")
