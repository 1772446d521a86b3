"""Where a k8s stack's images come from: built by the stack and pushed to `k8sRegistry`, or named by digest.

A stack with `k8sRegistry` builds the bot image from `botProject` and the dispatcher image with the
component every cloud stack builds with (images/component.py) and pushes both there; without it, the
stack runs `k8sBotImage` and `k8sDispatcherImage`, built elsewhere. One or the other, never both.

The push, and the cluster's pulls, sign in either with `k8sRegistryUsername` and the secret
`k8sRegistryPassword` (the stack then gives the pods an imagePullSecret: stacks/k8s/pull_secret.py), or
with nothing of the stack's: the deployer's own Docker login (`docker login`, a credential helper) pushes,
and the nodes' own rights pull (an EKS node role, a GKE node service account, an AKS kubelet identity).
`k8sRegistryPullUsername` and the secret `k8sRegistryPullPassword`, a credential that may only pull, go
into the pods' Secrets in place of the push's: whoever reads Secrets in the cluster then cannot push.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from stacks.config.reader import Reader

REGISTRY_KEY, USERNAME_KEY, PASSWORD_KEY = "k8sRegistry", "k8sRegistryUsername", "k8sRegistryPassword"
PULL_USERNAME_KEY, PULL_PASSWORD_KEY = "k8sRegistryPullUsername", "k8sRegistryPullPassword"
IMAGE_KEYS = ("k8sDispatcherImage", "k8sBotImage")
# A registry host (a DNS name with a dot, or any name with a port, or localhost: what Docker reads as a
# registry rather than a Docker Hub path) and at least one path segment under it, lowercase as the
# distribution spec's repository names are: 123.dkr.ecr.eu-west-1.amazonaws.com/voicefleet,
# europe-docker.pkg.dev/project/repo, x.azurecr.io/voicefleet, ghcr.io/org/voicefleet,
# harbor.example.com:8443/proj, localhost:5001/voicefleet (kind's local registry). The reader strips
# the value first.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_REGISTRY = re.compile(rf"^(?=.{{1,200}}$)(?:{_LABEL}(?:\.{_LABEL})+(?::[0-9]{{1,5}})?|{_LABEL}:[0-9]{{1,5}}|localhost)"
                       r"(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$")
# An image by digest: the cluster pulls exactly what was reviewed, and a new digest rolls the pods.
IMAGE_BY_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
# A registry user name goes into a dockerconfigjson's `auth` as `user:password`: no colon, printable.
_USERNAME = re.compile(r"^[!-9;-~]{1,256}$")


@dataclass(frozen=True)
class RegistryCredentials:
    """`k8sRegistryUsername` and the secret `k8sRegistryPassword`: the push's sign-in and the pods' pull secret."""

    username: str
    password: pulumi.Output[str]  # secret


@dataclass(frozen=True)
class K8sRegistry:
    """`k8sRegistry`: the repositories' parent (each image is `<it>/<prefix>-<role>`), and how to sign in."""

    url: str
    credentials: RegistryCredentials | None  # None: the deployer's Docker login pushes, the nodes' rights pull
    pull_credentials: RegistryCredentials | None = None  # a pull-only credential for the pods, if given

    @property
    def pulls_with(self) -> RegistryCredentials | None:
        """What the pods' Secrets hold: the pull-only credential, else the push's; None: the nodes' rights."""
        return self.pull_credentials or self.credentials

    @property
    def host(self) -> str:
        """The registry's address: what a Docker login and a dockerconfigjson's `auths` are keyed by."""
        return self.url.split("/", 1)[0]


def builds_images(cfg: Reader) -> bool:
    """Whether the stack builds its images (the settings then read `botProject`, as every cloud stack's do)."""
    return bool(cfg.optional(REGISTRY_KEY))


def load(cfg: Reader) -> tuple[K8sRegistry | None, str | None, str | None]:
    """The registry the stack pushes to, or the two images by digest (dispatcher's, bot's): one of them."""
    url = cfg.optional(REGISTRY_KEY)
    given = [key for key in IMAGE_KEYS if cfg.optional(key)]
    if url and given:
        raise cfg.fail(REGISTRY_KEY, f"and {', '.join(given)} are both set: the stack either builds the images and "
                                     f"pushes them to {REGISTRY_KEY}, or runs images built elsewhere by digest; "
                                     f"pulumi config rm {' and '.join(given)} (or pulumi config rm {REGISTRY_KEY})")
    if url:
        if not _REGISTRY.match(url):
            raise cfg.fail(REGISTRY_KEY, f"must be a registry and a path under it, lowercase, with no tag or scheme, "
                                         f"like ghcr.io/org/voicefleet or 123.dkr.ecr.eu-west-1.amazonaws.com/"
                                         f"voicefleet (got {url!r})")
        return K8sRegistry(url=url, credentials=_credentials(cfg, USERNAME_KEY, PASSWORD_KEY),
                           pull_credentials=_credentials(cfg, PULL_USERNAME_KEY, PULL_PASSWORD_KEY)), None, None
    _refuse_credentials(cfg)
    return None, _image(cfg, "k8sDispatcherImage"), _image(cfg, "k8sBotImage")


def _credentials(cfg: Reader, username_key: str, password_key: str) -> RegistryCredentials | None:
    username = cfg.optional(username_key)
    password = cfg.secret(password_key, required=False)
    if username is None and password is None:
        return None
    if username is None or password is None:
        missing = username_key if username is None else f"--secret {password_key}"
        raise cfg.fail(username_key if username is None else password_key,
                       f"is required with {password_key if username is None else username_key}: both sign in to "
                       f"{REGISTRY_KEY}, or neither (the nodes' own pull rights); pulumi config set {missing} …")
    if not _USERNAME.match(username):
        raise cfg.fail(username_key, "must be the registry's user name: printable, no space or colon")
    return RegistryCredentials(username=username, password=password)


def _refuse_credentials(cfg: Reader) -> None:
    for key in (USERNAME_KEY, PASSWORD_KEY, PULL_USERNAME_KEY, PULL_PASSWORD_KEY):
        if cfg.raw(key):
            raise cfg.fail(key, f"is used with {REGISTRY_KEY} only (the registry the stack pushes its images to); "
                                f"pulumi config rm {key}, or set {REGISTRY_KEY}")


def _image(cfg: Reader, key: str) -> str:
    image = cfg.optional(key)
    if image is None:
        raise cfg.fail(key, f"is required without {REGISTRY_KEY}: set {REGISTRY_KEY} to have the stack build and "
                            f"push the images (docs/kubernetes.md, \"A stack for your cluster\"), or name both "
                            f"images built elsewhere by digest")
    if not IMAGE_BY_DIGEST.match(image):
        raise cfg.fail(key, f"must be an image by digest, registry/name@sha256:<64 hex> (got {image!r}): push one "
                            f"with images/ci/build.sh and name its digest, or set {REGISTRY_KEY} to have the stack "
                            f"build and push the images")
    return image
