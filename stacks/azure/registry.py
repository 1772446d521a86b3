"""Registry (Azure): one Container Registry for the stack's images, admin user off.

Images are pushed with the deploying identity's own Entra ID token (stacks/azure/registry_login.py)
and pulled by the dispatcher's and the bots' managed identities with AcrPull (stacks/azure/identity.py):
no registry password exists. Each image role is a repository (`<login server>/<role>`).

Cleanup: ACR's retention policy for untagged manifests exists on the Premium tier only; Basic and
Standard keep every build until someone deletes them (`az acr run --cmd "acr purge …"`, docs/pulumi.md).
Prod stacks use Standard (more storage and throughput); neither tier deletes anything by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.containerregistry as azure_containerregistry

from images.component import RegistryAuth
from stacks.azure import registry_login


class Registry:
    registry: azure_containerregistry.Registry

    def __init__(self, name: str, *, registry_name: str, resource_group: pulumi.Input[str], location: str,
                 sku: str, tags: dict[str, str], protect: bool, opts: pulumi.ResourceOptions) -> None:
        self.registry = azure_containerregistry.Registry(
            name,
            registry_name=registry_name,
            resource_group_name=resource_group,
            location=location,
            sku={"name": sku},
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect)),
        )
        self.login_server = self.registry.login_server
        self.id = self.registry.id
        self._parent = opts.parent

    def urls(self, roles: Sequence[str]) -> dict[str, pulumi.Input[str]]:
        return {role: pulumi.Output.concat(self.login_server, "/", role) for role in roles}

    def login(self) -> RegistryAuth:
        invoke = pulumi.InvokeOutputOptions(parent=self._parent)
        token = azure_authorization.get_client_token_output(opts=invoke).token
        client = azure_authorization.get_client_config_output(opts=invoke)
        password = pulumi.Output.all(self.login_server, token, client.tenant_id).apply(
            lambda values: registry_login.exchange(str(values[0]), str(values[1] or ""), str(values[2] or "")))
        return RegistryAuth(address=self.login_server, username=registry_login.USERNAME,
                            password=pulumi.Output.secret(password))
