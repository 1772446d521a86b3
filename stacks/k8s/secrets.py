"""The dispatcher's secrets: one Secret in its namespace, read only by reference (env `valueFrom`).

Named by Pulumi (no `metadata.name`): pulumi-kubernetes replaces a Secret whose data changes (its
provider's `enableSecretMutable` is off by default, and the stack leaves it off; the ConfigMap case:
pulumi/pulumi-kubernetes#1567), an auto-named one under a new name, so the Deployment that references
it rolls its pods onto the new values (a Secret edited in place reaches no running container's
environment).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes.core as k8s_core


class DispatcherSecret(pulumi.ComponentResource):
    name: pulumi.Output[str]
    keys: tuple[str, ...]

    def __init__(self, name: str, namespace: pulumi.Input[str], values: Mapping[str, pulumi.Input[str]],
                 labels: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:DispatcherSecret", name, None, opts)
        secret = k8s_core.v1.Secret(name, metadata={"namespace": namespace, "labels": labels}, type="Opaque",
                                    string_data={key: pulumi.Output.secret(value) for key, value in values.items()},
                                    opts=pulumi.ResourceOptions(parent=self))
        self.name = secret.metadata.name
        self.keys = tuple(sorted(values))
        self.register_outputs({"name": self.name})

    def env(self) -> list[dict[str, object]]:
        """Each key as the variable of its name, by reference."""
        return [{"name": key, "value_from": {"secret_key_ref": {"name": self.name, "key": key}}} for key in self.keys]
