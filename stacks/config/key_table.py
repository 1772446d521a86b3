"""Every key of the project's namespace the program reads, and what a stack file may hold for each:
its type (DEFAULTS' value, or STRUCTURED), its choices (the very tuples the checks pass as `choices=`)
and whether it is a secret (a `secure:` value only). The stack-file schema
(docs/reference/stack.schema.json, stacks/config/stack_schema.py) is generated from it, the check for
keys nobody reads (stacks/config/stack_keys.py) knows its keys, and the tests hold Pulumi.yaml to
declare every one of them; meanings live in Pulumi.yaml's descriptions, once.
"""

from __future__ import annotations

from dispatcher.artifacts.rules import POLICIES
from dispatcher.machines.k8s.settings import MODES as K8S_MODES
from stacks.config import (
    admin_keys,
    calling_out,
    calling_out_telnyx,
    channel,
    front_door,
    k8s,
    k8s_model,
    made_secrets,
    phone,
    phone_transfers,
    recording,
    regions,
    sip_edge,
    store,
    store_ceiling,
    turn,
    whatsapp,
)
from stacks.config.derived import PROFILE_NAMES, SIZE_NAMES
from stacks.config.reader import DEFAULTS
from stacks.config.settings import BOT_RUNTIMES, BOT_SECRET_KEYS, CLOUDS, REQUIRED_SECRET_KEYS

# Set with `pulumi config set --secret` (a stack file holds `secure:` for each), never in plain text.
SECRET_KEYS: frozenset[str] = frozenset({
    *REQUIRED_SECRET_KEYS, *BOT_SECRET_KEYS, *phone.PHONE_SECRET_KEYS, admin_keys.KEY, channel.TOKEN_KEY,
    "botSecrets", regions.SECRET_KEY, regions.ACCEPTED_SECRET_KEY, "turnSharedSecret", "turnTlsCertificate",
    "turnTlsPrivateKey", store.PASSWORD_KEY, store.PREVIOUS_PASSWORD_KEY, store.MESSAGE_SECRET_KEY,
    store.ACCEPTED_MESSAGE_SECRET_KEY, "webhookSecret", "otelExporterOtlpHeaders",
    "recordingAccessKeyId", "recordingSecretAccessKey", k8s.KUBECONFIG_KEY, k8s.STORE_URL_KEY,
    "k8sRegistryPassword", "k8sRegistryPullPassword", sip_edge.DIGEST_PASSWORDS_KEY,
    sip_edge.INBOUND_DIGEST_PASSWORDS_KEY, sip_edge.TLS_CERTIFICATE_KEY, sip_edge.TLS_PRIVATE_KEY_KEY,
})
# Secret keys holding a map of secrets (`--secret --path 'KEY.NAME'`).
SECRET_MAPS = ("botSecrets", sip_edge.DIGEST_PASSWORDS_KEY, sip_edge.INBOUND_DIGEST_PASSWORDS_KEY)
# Keys holding a map or a list (`pulumi config set --path`), by the YAML shapes a stack file may give
# them; a string is the JSON or `name=url,…` form some of them also take.
STRUCTURED: dict[str, tuple[str, ...]] = {
    "tags": ("object",),
    "botSecrets": ("object",),
    sip_edge.DIGEST_PASSWORDS_KEY: ("object",),
    sip_edge.INBOUND_DIGEST_PASSWORDS_KEY: ("object",),
    sip_edge.KEY: ("object",),
    "botPermissions": ("array", "object"),
    "botUnsetVariables": ("array", "object"),
    "regions": ("object", "string"),
    front_door.REGIONS_KEY: ("object",),
    k8s_model.NODE_SELECTOR_KEY: ("object",),
    k8s_model.TOLERATIONS_KEY: ("array",),
    whatsapp.NUMBERS_KEY: ("object", "string"),
    **dict.fromkeys({**calling_out.POLICY_KEYS, **calling_out_telnyx.POLICY_KEYS}, ("array",)),
    phone_transfers.TARGETS_KEY: ("array",),
}
# Decimals the checks parse from text (DEFAULTS holds them as strings: "0.1"); "" = the provider's own.
DECIMALS = ("reserveBuffer", "reserveBurst", "reserveColdStartSeconds", *calling_out.PACE_KEYS,
            *calling_out_telnyx.PACE_KEYS)
# Plain keys with no default of their own: unset is nothing (a cloud is required).
WITHOUT_DEFAULT = ("cloud",)
# A key's only values, as the checks take them.
CHOICES: dict[str, tuple[str, ...]] = {
    "cloud": CLOUDS,
    "size": ("", *SIZE_NAMES),
    "profile": PROFILE_NAMES,
    "role": front_door.ROLES,
    "turn": turn.MODES,
    "recording": tuple(POLICIES),
    "recordingTranscript": tuple(POLICIES),
    recording.USAGE_FILES_KEY: recording.USAGE_FILES_CHOICES,
    "botRuntime": BOT_RUNTIMES,
    "k8sMode": tuple(K8S_MODES),
    k8s.AGENT_SANDBOX_KEY: k8s.AGENT_SANDBOX_CHOICES,
    k8s.CHANNEL_TLS_KEY: k8s.CHANNEL_TLS_CHOICES,
    k8s.STORE_KEY: (k8s.EXTERNAL, k8s.IN_CLUSTER),
    store_ceiling.NODE_TYPE_KEY: store_ceiling.NODE_TYPE_CHOICES,
    store_ceiling.SKU_KEY: store_ceiling.SKU_CHOICES,
    made_secrets.ROLL_KEY: made_secrets.ROLLS,
    calling_out.VOICEMAIL_KEY: calling_out.VOICEMAIL_OPTIONS,
    calling_out_telnyx.VOICEMAIL_KEY: calling_out_telnyx.VOICEMAIL_OPTIONS,
}
# The providers' keys a stack of each cloud sets (the SDKs read more; stacks/config/stack_keys.py knows them).
PROVIDER_KEYS: dict[str, str] = {
    "aws:region": "AWS: the region the whole stack runs in (its certificate's too).",
    "gcp:project": "GCP: the project id the stack creates its resources in.",
    "gcp:region": "GCP: the region of the dispatcher, the bots and the registry.",
    "gcp:zone": "GCP: the provider's default zone (the bots' zone is gcpZone).",
    "azure-native:subscriptionId": "Azure: the subscription the stack creates its resources in.",
    "azure-native:location": "Azure: the region (location) of every resource.",
}
_TYPES = {bool: "boolean", int: "integer", list: "array", str: "string", dict: "object"}


def keys() -> frozenset[str]:
    """Every key of the namespace the program reads."""
    return frozenset({*DEFAULTS, *SECRET_KEYS, *STRUCTURED, *WITHOUT_DEFAULT})


def kinds(key: str) -> tuple[str, ...]:
    """The JSON types a stack file may give `key` (a secret: its `secure:` object; see stack_schema)."""
    if key in STRUCTURED:
        return STRUCTURED[key]
    if key in DECIMALS:
        return ("number",)
    return (_TYPES[type(DEFAULTS[key])],) if key in DEFAULTS else ("string",)
