"""With `k8sBotSecret`, a Secret's keys in the bots' namespace held to the names `botSecrets` takes, at admission.

Every key of the team's Secret becomes a variable of each bot (`envFrom`), so its keys answer to the rule
each `botSecrets` key answers to at preview (stacks/config/bot.py): an environment variable's name (A-Z, 0-9,
_, a letter first, at most 128 characters), and none voicefleet sets on a bot or keeps from it
(dispatcher/machines/bot_variables.py). A key outside it is skipped by the kubelet (before Kubernetes 1.34,
an `InvalidEnvironmentVariableNames` event the session never shows) or taken under a name no bot reads, and
a reserved one would lose to the dispatcher's value or change what the bot runs.

The stack never reads the Secret (its values stay out of the state, and the dispatcher keeps no verb on
Secrets), and the one a rotation names next is written before the `up` that names it: so a
ValidatingAdmissionPolicy refuses, as it is written, any Opaque Secret of the bots' namespace with such a
key, naming it. With `k8sBotSecret` the stack writes no Opaque Secret there (the bots' keys' Secret comes
from `botSecrets`, which it excludes; the pull Secret is `kubernetes.io/dockerconfigjson`). A Secret written
before the policy existed is not looked at again: write it anew.
"""

from __future__ import annotations

from typing import Any, cast

import pulumi
import pulumi_kubernetes.admissionregistration as k8s_admissionregistration

from dispatcher.machines.bot_variables import (
    BOT_HOST_IDENTITY,
    CLOUD_CREDENTIALS,
    CODE_LOADERS,
    DISPATCHER_OWN,
    DISPATCHER_OWN_PREFIXES,
    SET_ON_BOT,
    VOICEFLEET_PREFIXES,
)
from stacks.k8s.cel import quoted
from stacks.k8s.namespaces import NAME_LABEL

NAME_PATTERN = "^[A-Z][A-Z0-9_]{0,127}$"  # stacks/config/bot.py's _ENV_NAME, in RE2
RESERVED = sorted(DISPATCHER_OWN | SET_ON_BOT | BOT_HOST_IDENTITY | CODE_LOADERS
                  | frozenset().union(*CLOUD_CREDENTIALS.values()))
PREFIXES = sorted({*DISPATCHER_OWN_PREFIXES, *VOICEFLEET_PREFIXES})
DOCS = 'docs/kubernetes.md, "Your own Secret"'


def policy_spec(bot_namespace: str) -> dict[str, Any]:
    keys = ("(has(object.data) ? object.data.map(k, k) : []) + "
            "(has(object.stringData) ? object.stringData.map(k, k) : [])")
    bad = (f"variables.keys.filter(k, !k.matches('{NAME_PATTERN}') || k in {quoted(RESERVED)} || "
           f"{quoted(PREFIXES)}.exists(p, k.startsWith(p)))")
    return {
        "failure_policy": "Fail",
        "match_constraints": {
            "namespace_selector": {"match_labels": {NAME_LABEL: bot_namespace}},
            "resource_rules": [{"api_groups": [""], "api_versions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                "resources": ["secrets"]}],
        },
        # The API server defaults a Secret's type to Opaque before admission; a missing one counts as Opaque.
        "match_conditions": [
            {"name": "opaque", "expression": "!has(object.type) || object.type == 'Opaque'"},
            # Being deleted: the update that removes its last finalizer (the garbage collector's, after a
            # foreground delete) must pass, or a Secret written before the policy stays Terminating.
            {"name": "not-deleting", "expression": "!has(object.metadata.deletionTimestamp)"},
        ],
        "variables": [{"name": "keys", "expression": keys}, {"name": "bad", "expression": bad}],
        "validations": [{
            "expression": "size(variables.bad) == 0",
            "message": ("every key of a Secret in the bots' namespace becomes a bot's environment variable: A-Z, "
                        f"0-9 and _, a letter first, none of voicefleet's own ({DOCS})"),
            "message_expression": (
                "'key ' + variables.bad[0] + ' of Secret ' + object.metadata.name + ' is no name a bot takes: "
                "every key of a Secret in the bots\\' namespace becomes an environment variable of each bot, so it "
                "must be A-Z, 0-9 and _, a letter first, and none of voicefleet\\'s own (BOT_*, VOICEFLEET_*, "
                "REDIS_*, PATH, LD_PRELOAD, the clouds\\' credential variables…): rename the key and write the "
                f"Secret again ({DOCS})'"),
        }],
    }


class BotSecretKeys(pulumi.ComponentResource):
    """The policy and its binding (Deny) on the bots' namespace's Opaque Secrets."""

    def __init__(self, name: str, prefix: str, bot_namespace: str, labels: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:BotSecretKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy_name = f"{prefix}-bot-secret-keys"
        policy = k8s_admissionregistration.v1.ValidatingAdmissionPolicy(
            name, metadata={"name": policy_name, "labels": labels},
            spec=cast(k8s_admissionregistration.v1.ValidatingAdmissionPolicySpecArgsDict, policy_spec(bot_namespace)),
            opts=child)
        binding = k8s_admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            name, metadata={"name": policy_name, "labels": labels},
            spec={"policy_name": policy.metadata.name, "validation_actions": ["Deny"]}, opts=child)
        self.objects: tuple[pulumi.Resource, ...] = (policy, binding)
        self.register_outputs({})
