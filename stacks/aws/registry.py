"""Registry (AWS): one ECR repository per image role, scanned on push, with a lifecycle policy.

A helper, not a component: the repositories register under the stack itself (their URNs predate
this module), named `<stack>-<role>` with the physical name `<prefix>-<role>`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from images.component import REVISION_TAG_PREFIX, RegistryAuth


def lifecycle_policy(keep: int) -> str:
    """The newest `keep` builds stay, and the newest `keep` revision tags.

    Each build leaves two images (the build and its registry-cache manifest), tagged `latest` and
    `buildcache` until the next build, untagged from then on; a superseded build is what a
    circuit-breaker rollback or an older task definition revision pulls. Every deploy with a
    source revision also pushes an index tagged `rev-<revision>`, also when nothing was rebuilt.
    A count over every image would let docs-only deploys push real builds out, so the revision
    indexes are counted by a rule of their own (ECR decides an image by the first rule whose tag
    selection it matches), and the superseded builds and caches by the untagged rule. The current
    `latest` and `buildcache` match no rule and stay. ECR refuses to delete an image that a kept
    index still references, so an old build a kept revision names stays too."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"keep the newest {keep} revision tags",
         "selection": {"tagStatus": "tagged", "tagPrefixList": [REVISION_TAG_PREFIX],
                       "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {keep} superseded builds and their caches",
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2 * keep},
         "action": {"type": "expire"}},
    ]})


class Registry:
    """The repositories of `roles` ("bot", "dispatcher", and "bot-webrtc" with a TURN relay)."""

    repositories: dict[str, aws.ecr.Repository]

    def __init__(self, name: str, *, prefix: str, roles: Sequence[str], keep: int, protect: bool,
                 parent: pulumi.Resource) -> None:
        self._parent = parent
        self.repositories = {}
        for role in roles:
            repository = aws.ecr.Repository(
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
            aws.ecr.LifecyclePolicy(f"{name}-{role}", repository=repository.name, policy=lifecycle_policy(keep),
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
        token = aws.ecr.get_authorization_token_output(registry_id=bot.registry_id,
                                                       opts=pulumi.InvokeOutputOptions(parent=self._parent))
        return RegistryAuth(address=bot.repository_url.apply(lambda url: url.split("/", 1)[0]),
                            username=token.user_name, password=token.password)
