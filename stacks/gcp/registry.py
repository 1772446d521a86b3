"""Registry (GCP): one Artifact Registry repository for the stack's images, with cleanup policies.

A helper, not a component: the repository registers under the stack itself (its URN predates this
module). Each image role is a path below it (`<region>-docker.pkg.dev/<project>/<prefix>/<role>`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from images.component import RegistryAuth


class Registry:
    repository: gcp.artifactregistry.Repository

    def __init__(self, name: str, *, prefix: str, project: str, region: str, keep: int, protect: bool,
                 opts: pulumi.ResourceOptions) -> None:
        self.repository = gcp.artifactregistry.Repository(
            name,
            repository_id=prefix,
            location=region,
            format="DOCKER",
            description="voicefleet images (pinned by digest)",
            cleanup_policies=[
                {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": keep}},
                {"id": "drop-untagged", "action": "DELETE",
                 "condition": {"tag_state": "UNTAGGED", "older_than": "86400s"}},
            ],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect)),
        )
        self.host = f"{region}-docker.pkg.dev"
        self._base = pulumi.Output.concat(self.host, "/", project, "/", self.repository.repository_id)
        self._parent = opts.parent

    def urls(self, roles: Sequence[str]) -> dict[str, pulumi.Input[str]]:
        """Image role -> repository path (no tag): where the images are pushed."""
        return {role: pulumi.Output.concat(self._base, "/", role) for role in roles}

    def login(self) -> RegistryAuth:
        """The registry's push credentials: the deploying identity's own access token."""
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self._parent))
        return RegistryAuth(address=self.host, username="oauth2accesstoken", password=client.access_token)
