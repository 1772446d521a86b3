"""Registry (GCP): one Artifact Registry repository for the stack's images, with cleanup policies.

A helper, not a component: the repository registers under the stack itself (its URN predates this
module). Each image role is a path below it (`<region>-docker.pkg.dev/<project>/<prefix>/<role>`).

Cleanup (Artifact Registry's "Configure cleanup policies": a version that matches a KEEP policy is
kept even when a DELETE policy matches it too; `mostRecentVersions` keeps the newest `keepCount`
versions of each package): the newest `imageRetentionCount` versions stay (a build, its cache and
each revision index are versions of their own, so that is about a third as many builds);
untagged versions older than a day go, superseded builds and caches; and revision indexes
(`rev-<revision>`, images/component.py) older than `REVISION_TAG_DAYS` go, which no other rule
would ever delete since they stay tagged. The same aim as ECR's rules (stacks/aws/registry.py):
old revision tags must not pile up. And the kept releases' images stay, by digest: a KEEP rule on
`versionNamePrefixes` (a Docker version's name is its digest) lists them (stacks/gcp/releases.py
registry_keeps), so a rollback to a kept release never needs a build however many builds come
after it; a release's digest leaves the rule only once no session can still run the release.
That digest is the whole image: a GCP stack builds for linux/amd64 alone (stacks/config/settings.py),
so a build is one manifest, never an index whose untagged platform manifests `drop-untagged`
could match under a kept digest (Google documents no exception for them). Kept by digest, not by
a `release-` tag as on ECR (stacks/aws/registry.py): a KEEP rule on a tag prefix keeps every
tagged version for good, since nothing removes a release's tag, while the digest leaves the
rule with its release.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp.artifactregistry as gcp_artifactregistry
import pulumi_gcp.organizations as gcp_organizations

from images.component import REVISION_TAG_PREFIX, RegistryAuth

REVISION_TAG_DAYS = 30  # a revision tag is a label for people: rollbacks pin digests, not tags


def cleanup_policies(keep: int, releases: Sequence[str]) -> list[gcp_artifactregistry.RepositoryCleanupPolicyArgsDict]:
    """The repository's rules; `releases`, the kept releases' digests, are kept by name (none: no rule,
    which an empty condition would turn into keeping everything)."""
    kept: list[gcp_artifactregistry.RepositoryCleanupPolicyArgsDict] = [
        {"id": "keep-releases", "action": "KEEP", "condition": {"version_name_prefixes": sorted(releases)}}]
    return [
        {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": keep}},
        *(kept if releases else []),
        {"id": "drop-untagged", "action": "DELETE", "condition": {"tag_state": "UNTAGGED", "older_than": "86400s"}},
        {"id": "drop-old-revision-tags", "action": "DELETE",
         "condition": {"tag_state": "TAGGED", "tag_prefixes": [REVISION_TAG_PREFIX],
                       "older_than": f"{REVISION_TAG_DAYS * 86400}s"}},
    ]


class Registry:
    repository: gcp_artifactregistry.Repository

    def __init__(self, name: str, *, prefix: str, project: str, region: str, keep: int, protect: bool,
                 opts: pulumi.ResourceOptions, releases: pulumi.Input[Sequence[str]] = ()) -> None:
        self.repository = gcp_artifactregistry.Repository(
            name,
            repository_id=prefix,
            location=region,
            format="DOCKER",
            description="voicefleet images (pinned by digest)",
            cleanup_policies=pulumi.Output.from_input(releases).apply(lambda digests: cleanup_policies(keep, digests)),
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
        client = gcp_organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self._parent))
        return RegistryAuth(address=self.host, username="oauth2accesstoken", password=client.access_token)
