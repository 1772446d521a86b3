"""Registry (AWS): one ECR repository per image role, scanned on push, with a lifecycle policy.

A helper, not a component: the repositories register under the stack itself (their URNs predate
this module), named `<stack>-<role>` with the physical name `<prefix>-<role>`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws.ecr as aws_ecr

from images.component import RELEASE_TAG_PREFIX, REVISION_TAG_PREFIX, RegistryAuth

# Untagged objects a superseded build leaves, at most: with two platforms (`platforms` allows
# linux/amd64 and linux/arm64) its index and one manifest per platform, and its registry cache;
# docker-build pushes no attestation (images/component.py). ECR counts each as an image
# (aws/containers-roadmap#2613). One platform leaves two: the image manifest and the cache.
UNTAGGED_PER_BUILD = 4


def lifecycle_policy(keep: int) -> str:
    """The newest `keep` releases' images stay, the newest `keep` revision tags, and the newest
    `keep` builds' untagged manifests.

    ECR decides an image by the first rule whose tag selection it matches (a rule cannot expire an
    image a rule of higher priority selects), and has no "keep" action: a rule keeps what its count
    spares. So:
    1. `release-<name>` (images/component.py tag_release): one tag per release, on the bot images
       the release's task definitions pin (for one platform an index naming that manifest, for
       several the build's own index), so the count counts releases, not manifests. First, so an
       image that carries a revision tag too is decided here.
    2. `rev-<revision>`: every deploy with a source revision pushes one, also when nothing was
       rebuilt; counted apart, so docs-only deploys push no build out.
    3. untagged: superseded builds (`latest` and `buildcache` move on), their platform manifests
       and caches, `UNTAGGED_PER_BUILD` per build. A release's platform manifests are untagged
       even when its index is tagged: whether ECR spares the children of a kept index is not
       documented, so this count keeps them on its own. A superseded build is also what a
       circuit-breaker rollback of the dispatcher pulls.
    The current `latest` and `buildcache` match no rule and stay."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"keep the newest {keep} releases' images",
         "selection": {"tagStatus": "tagged", "tagPrefixList": [RELEASE_TAG_PREFIX],
                       "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {keep} revision tags",
         "selection": {"tagStatus": "tagged", "tagPrefixList": [REVISION_TAG_PREFIX],
                       "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
        {"rulePriority": 3, "description": f"keep the newest {keep} superseded builds' manifests and caches",
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                       "countNumber": UNTAGGED_PER_BUILD * keep},
         "action": {"type": "expire"}},
    ]})


class Registry:
    """The repositories of `roles` ("bot", "dispatcher", and "bot-webrtc" with a TURN relay)."""

    repositories: dict[str, aws_ecr.Repository]

    def __init__(self, name: str, *, prefix: str, roles: Sequence[str], keep: int, protect: bool,
                 parent: pulumi.Resource) -> None:
        self._parent = parent
        self.repositories = {}
        for role in roles:
            repository = aws_ecr.Repository(
                f"{name}-{role}",
                name=f"{prefix}-{role}",
                # Mutable tags: the build cache tag is rewritten on every build; what runs is
                # pinned by digest, so a moved tag never changes a running workload.
                image_tag_mutability="MUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "AES256"}],
                force_delete=not protect,
                opts=pulumi.ResourceOptions(parent=parent, protect=protect),
            )
            aws_ecr.LifecyclePolicy(f"{name}-{role}", repository=repository.name, policy=lifecycle_policy(keep),
                                    opts=pulumi.ResourceOptions(parent=parent))
            self.repositories[role] = repository

    def arn(self, role: str) -> pulumi.Output[str]:
        return self.repositories[role].arn

    def urls(self) -> dict[str, pulumi.Input[str]]:
        """Image role -> repository URL (no tag): where the images are pushed."""
        return {role: repository.repository_url for role, repository in self.repositories.items()}

    def login(self) -> RegistryAuth:
        """The registry's push credentials: a short-lived ECR token, held only in memory by the build."""
        bot = self.repositories["bot"]
        token = aws_ecr.get_authorization_token_output(registry_id=bot.registry_id,
                                                       opts=pulumi.InvokeOutputOptions(parent=self._parent))
        return RegistryAuth(address=bot.repository_url.apply(lambda url: url.split("/", 1)[0]),
                            username=token.user_name, password=token.password)
