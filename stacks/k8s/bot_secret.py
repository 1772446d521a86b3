"""The bots' keys on k8s: one Secret in the bots' namespace, which every bot pod takes by reference.

From `botSecrets`, and the collector's headers (otelExporterOtlpHeaders: OTEL_EXPORTER_OTLP_HEADERS), the stack
writes it (`type: Opaque`, `stringData` of Pulumi secrets, so the values are encrypted in the state and shown as
`[secret]` in a preview); with `k8sBotSecret` the team keeps its own, holding the headers too, and the stack
only names it. Either way the dispatcher gets the name alone (K8S_BOT_SECRET) and builds
each bot pod with `envFrom` naming it (dispatcher/machines/k8s/pods.py), as the pool's SandboxTemplate
does: the kubelet reads the Secret when the container starts, and the dispatcher's Role keeps no verb on
Secrets (stacks/k8s/access.py).

The name is the rollout marker. It ends with a keyed digest of the keys and their values
(HMAC-SHA-256 under storeMessageSecret, which every k8s stack has: the name tells nothing of a value to
whoever lacks the stack's secrets), so a changed value is a new Secret under a new name: pulumi-kubernetes
creates it, updates what names it (the dispatcher's Deployment rolls; the SandboxTemplates change, and
their `Recreate` pools replace the warm bots of the old keys; in the pods mode the replicas retire idle pods
of another name), and keeps the old one while the replicas that name it drain
(stacks/k8s/bot_secret_generations.py). An `envFrom` is read once, when a
container starts, so a Secret edited in place would reach no running bot and leave warm ones on the old
keys: the stack's is `immutable`, and a team that rotates its own writes a new Secret and names it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

import pulumi
import pulumi_kubernetes.core as k8s_core

from stacks.config.bot_env import OTLP_HEADERS
from stacks.config.model import Settings

VARIABLE = "K8S_BOT_SECRET"  # the dispatcher's setting: the Secret's name (dispatcher/machines/k8s/settings.py)
DIGEST_CHARACTERS = 12  # of the HMAC's hex: 48 bits, a new name for every change


def keys_digest(key: str, values: Mapping[str, str]) -> str:
    """The keys and their values, keyed by `key`: what the Secret's name ends with."""
    document = json.dumps(dict(sorted(values.items())), separators=(",", ":")).encode()
    return hmac.new(key.encode(), document, hashlib.sha256).hexdigest()[:DIGEST_CHARACTERS]


def bot_keys(settings: Settings) -> dict[str, pulumi.Output[str]]:
    """What the stack's Secret holds: `botSecrets` (and the single bot keys), and with otelExporterOtlpHeaders the
    collector's headers (OTEL_EXPORTER_OTLP_HEADERS), which the other clouds give their bots as a secret too."""
    traced = {name: settings.secrets.observability[name] for name in settings.observability.bot_secret_names()}
    return {**settings.secrets.bot, **traced}


def team_secret_note(settings: Settings) -> str | None:
    """With `k8sBotSecret` and otelExporterOtlpHeaders: the headers the bots need are the team's Secret's to hold
    (the stack never reads nor writes it, so it cannot check), said at each preview; None otherwise."""
    cfg = settings.kubernetes
    assert cfg is not None
    if cfg.bot_secret is None or not settings.observability.otlp_headers:
        return None
    return (f"voicefleet:otelExporterOtlpHeaders reaches the dispatcher only: the bots take {OTLP_HEADERS} from "
            f"your Secret {cfg.bot_secret} (k8sBotSecret), which the stack never reads or writes. Give it that key, "
            "the same headers, in each namespace its bots run in, or their spans reach the collector without them "
            "(docs/kubernetes.md, \"The bots' logs and traces\")")


def secret_name(settings: Settings) -> pulumi.Output[str] | None:
    """The Secret every bot pod names: the team's (`k8sBotSecret`), the stack's from `botSecrets`, or None.
    Plain: the name carries no value, and the pods' templates (whose digest the provider waits on) hold it."""
    cfg = settings.kubernetes
    assert cfg is not None
    if cfg.bot_secret is not None:
        return pulumi.Output.from_input(cfg.bot_secret)
    values = bot_keys(settings)
    if not values:
        return None
    key = settings.secrets.store_message_secret
    assert key is not None  # stacks/config/k8s.py requires it on every k8s stack
    names = sorted(values)
    digest = pulumi.Output.all(key, *(values[name] for name in names)).apply(
        lambda found: keys_digest(str(found[0]), dict(zip(names, map(str, found[1:]), strict=True))))
    return pulumi.Output.unsecret(digest).apply(lambda version: f"{settings.prefix}-bot-keys-{version}")


# A kept Secret's values are the state's (stacks/k8s/bot_secret_generations.py): the engine sets each
# ignored path of the new inputs to the old inputs' value before the provider's Check (pulumi/pulumi
# pkg/resource/deploy/step_generator.go `processIgnoreChanges`, sdk/go/common/resource/properties_path.go
# `PropertyPath.Reset`). Both paths: pulumi-kubernetes' Check stores `stringData` base64'd into `data`
# (provider/pkg/provider/provider.go `Check` → `normalizeInputs` → provider/pkg/clients/unstructured.go
# `normalizeSecretStringData`), and an older provider's state may still hold `stringData`. Its `Diff` also
# drops the ignored paths from the diff it computes against the live object (provider.go `Diff`), and an update
# (a label changed) sends the live object's values, so Server-Side Apply keeps them (pulumi-kubernetes
# provider/pkg/await/await.go `ssaUpdate` → `handleSSAIgnoreFields`). Its name is the state's too: a slot whose
# state holds another Secret (an `up --target` wrote the outputs without it) stays as it is rather than being
# replaced by one under the recorded name with the other's values; and one the state lacks (deleted and
# refreshed away) has no old inputs, so the engine makes it as declared (step_generator.go `continueStepsFromImport`
# ignores nothing then): empty, under a stand-in name no pod takes, not an empty Secret under the kept name.
KEPT_VALUES = ("data", "stringData")
KEPT = (*KEPT_VALUES, "metadata.name")
STAND_IN = "-gone"  # the kept name's suffix for a Secret the state no longer holds


class BotSecret(pulumi.ComponentResource):
    """The stack's Secret of the bots' keys, under `name` (secret_name), in the bots' namespace. `values`
    None: the Secret the last `up` wrote under this resource's name, kept as the state holds it."""

    def __init__(self, name: str, secret: pulumi.Input[str], namespace: pulumi.Input[str],
                 values: Mapping[str, pulumi.Input[str]] | None, labels: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:BotSecret", name, None, opts)
        kept = values is None
        self.secret = k8s_core.v1.Secret(
            name, metadata={"name": pulumi.Output.concat(secret, STAND_IN) if kept else secret, "namespace": namespace,
                            "labels": labels}, type="Opaque", immutable=True,
            string_data=None if values is None else {key: pulumi.Output.secret(value) for key, value in values.items()},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=list(KEPT) if kept else None))
        self.register_outputs({})
