"""What EKS's pod identity webhook adds to a bot pod whose ServiceAccount names an IAM role (IRSA).

`botPermissions["eks.amazonaws.com/role-arn"]` annotates the bots' ServiceAccount (stacks/k8s/access.py).
EKS's mutating webhook (aws/amazon-eks-pod-identity-webhook, pkg/handler/handler.go) then patches every
pod of that account before any validating policy sees it:

- a volume `aws-iam-token`: one projected ServiceAccount token, path `token`, for the audience
  `sts.amazonaws.com` (the webhook's default, which the account's `eks.amazonaws.com/audience`
  annotation would override: the stack writes none, and a token for any other audience is refused);
- in each container, plain environment values (`AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, and where
  configured `AWS_STS_REGIONAL_ENDPOINTS`, `AWS_REGION`, `AWS_DEFAULT_REGION`) and a read-only mount of
  that volume, neither of which the pods-mode policy refuses.

So the policy admits that one volume, and only while the role is configured (stacks/k8s/bot_pods_policy.py),
its token living a day at most (the webhook's default is 86400 s).

An EKS Pod Identity association for the account takes precedence in the same webhook: it adds a volume
`eks-pod-identity-token` (audience `pods.eks.amazonaws.com`) and `AWS_CONTAINER_CREDENTIALS_FULL_URI`
instead, which the policy refuses first, with the way out (POD_IDENTITY_REFUSED).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
AUDIENCE_ANNOTATION = "eks.amazonaws.com/audience"
STS_AUDIENCE = "sts.amazonaws.com"
LONGEST_TOKEN_SECONDS = 86400  # the webhook's own default expiration
POD_IDENTITY_VOLUME, POD_IDENTITY_AUDIENCE = "eks-pod-identity-token", "pods.eks.amazonaws.com"


def pod_identity_refused(namespace: str, account: str) -> str:
    """The policy's message for a pod EKS Pod Identity's webhook mutated: what to do instead."""
    return (f"a bot pod carries EKS Pod Identity's token ({POD_IDENTITY_VOLUME}), which the policy does not admit: "
            f"delete the Pod Identity association for {namespace}/{account}; use botPermissions' "
            f"{ROLE_ANNOTATION} (IRSA) (docs/bring-your-bot.md, \"The bot's own cloud access: `botPermissions`\")")


@dataclass(frozen=True)
class WebIdentityVolume:
    """The projected token volume a cloud's webhook adds to a bot pod."""

    name: str
    audience: str
    path: str

    @property
    def described(self) -> str:
        return f"EKS's web identity token ({self.name}, audience {self.audience}, at most {LONGEST_TOKEN_SECONDS} s)"


def web_identity_volume(annotations: Mapping[str, str]) -> WebIdentityVolume | None:
    """The volume EKS's webhook adds to the pods of a ServiceAccount with these annotations; None: none."""
    if ROLE_ANNOTATION not in annotations:
        return None
    return WebIdentityVolume(name="aws-iam-token", audience=annotations.get(AUDIENCE_ANNOTATION, STS_AUDIENCE),
                             path="token")
