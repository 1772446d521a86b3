"""`k8sModelImage` and its keys: the shared GPU model service a k8s stack runs for its converged bots (off unset).

The image is the team's batched Moshi/PersonaPlex server (docs/converged.md, "A shared model service"), by
digest as the stack's other images are. One replica at most: the dispatcher reads one capacity through one
URL, and a Service in front of several pods would answer each read from whichever pod it picks. Its pods go
to the cluster's GPU nodes by a node selector and tolerations, with `nvidia.com/gpu` in their limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stacks.config.k8s_registry import IMAGE_BY_DIGEST
from stacks.config.reader import DEFAULTS, Reader

IMAGE_KEY = "k8sModelImage"
NAMESPACE_KEY, REPLICAS_KEY, GPUS_KEY = "k8sModelNamespace", "k8sModelReplicas", "k8sModelGpus"
CPU_KEY, MEMORY_KEY, STREAMS_KEY, PORT_KEY = "k8sModelCpu", "k8sModelMemory", "k8sModelStreams", "k8sModelPort"
NODE_SELECTOR_KEY, TOLERATIONS_KEY = "k8sModelNodeSelector", "k8sModelTolerations"
# The keys that mean something only with the image: set without it, nothing would read them.
WITH_IMAGE = (NAMESPACE_KEY, REPLICAS_KEY, GPUS_KEY, CPU_KEY, MEMORY_KEY, STREAMS_KEY, PORT_KEY, NODE_SELECTOR_KEY,
              TOLERATIONS_KEY)
# GKE's taint of a GPU node pool in a cluster with other pools: `nvidia.com/gpu`, NoSchedule. NVIDIA's
# device plugin, AKS and eksctl taint nothing by default (AKS's docs suggest `sku=gpu:NoSchedule`, which
# k8sModelTolerations then names); a toleration of an absent taint changes nothing.
DEFAULT_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
TOLERATION_FIELDS = ("key", "operator", "value", "effect")
OPERATORS, EFFECTS = ("Exists", "Equal"), ("NoSchedule", "PreferNoSchedule", "NoExecute")
# A label's name and value (apimachinery validation: IsQualifiedName, IsValidLabelValue).
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_LABEL_VALUE = re.compile(rf"^(?:{_NAME})?$")
# CPU as cores or millicores, memory in Mi or Gi: the forms the stack's other sizes take.
_CPU = re.compile(r"^(?:[1-9]\d*m|\d+(?:\.\d{1,3})?)$")
_MEMORY = re.compile(r"^[1-9]\d*(?:Mi|Gi)$")


@dataclass(frozen=True)
class ModelService:
    image: str  # by digest
    namespace: str
    replicas: int  # 0 (stopped, its calls refused) or 1
    gpus: int  # `nvidia.com/gpu` per pod, requests equal to limits (an extended resource cannot overcommit)
    cpu: str
    memory: str
    streams: int  # the calls one pod batches: its capacity's `total`
    port: int
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]

    @property
    def service_name(self) -> str:
        return "voicefleet-model"

    @property
    def url(self) -> str:
        """MODEL_SERVICE_URL: the Service's cluster name; the dispatcher and every bot are given it."""
        return f"http://{self.service_name}.{self.namespace}.svc:{self.port}"


def load(cfg: Reader, dns_label: re.Pattern[str], taken: tuple[str, ...]) -> ModelService | None:
    """None unless `k8sModelImage` names the server's image; `taken`: the stack's other namespaces."""
    image = cfg.optional(IMAGE_KEY)
    if image is None:
        for key in WITH_IMAGE:
            if _set_by_someone(cfg, key):
                raise cfg.fail(key, f"is used with {IMAGE_KEY} only (the shared model service's image, by digest): "
                                    f"pulumi config rm {cfg.command_key(key)}, or set {IMAGE_KEY} "
                                    "(docs/converged.md, \"On Kubernetes\")")
        return None
    if not IMAGE_BY_DIGEST.match(image):
        raise cfg.fail(IMAGE_KEY, f"must be the model server's image by digest, registry/name@sha256:<64 hex> (got "
                                  f"{image!r}): the cluster then runs exactly the image you tested, and a new digest "
                                  "rolls the pod")
    namespace = cfg.string(NAMESPACE_KEY, pattern=dns_label)
    if namespace in taken:
        raise cfg.fail(NAMESPACE_KEY, f"must be a namespace of its own, not {namespace!r} (the dispatcher's or the "
                                      "bots'): the bots' quota and admission policy are not the model's")
    replicas = cfg.integer(REPLICAS_KEY, minimum=0)
    if replicas > 1:
        raise cfg.fail(REPLICAS_KEY, f"must be 0 or 1 (got {replicas}): the dispatcher reads one capacity from one "
                                     "URL, and a Service in front of several pods would answer each read from "
                                     "whichever pod it picks. Give the one pod more GPUs (k8sModelGpus) and "
                                     "streams (k8sModelStreams), or run another stack for another region")
    cpu, memory = cfg.string(CPU_KEY), cfg.string(MEMORY_KEY)
    if not _CPU.match(cpu) or cpu in ("0", "0.0"):
        raise cfg.fail(CPU_KEY, f"must be CPU as cores or millicores, like 8 or 7500m (got {cpu!r})")
    if not _MEMORY.match(memory):
        raise cfg.fail(MEMORY_KEY, f"must be memory in Mi or Gi, like 64Gi (got {memory!r})")
    return ModelService(
        image=image, namespace=namespace, replicas=replicas, gpus=cfg.integer(GPUS_KEY, minimum=1, maximum=16),
        cpu=cpu, memory=memory, streams=cfg.integer(STREAMS_KEY, minimum=1, maximum=1024),
        # A non-root server cannot bind below 1024 without a capability the pod drops.
        port=cfg.integer(PORT_KEY, minimum=1024, maximum=65535),
        node_selector=_node_selector(cfg), tolerations=_tolerations(cfg))


def _set_by_someone(cfg: Reader, key: str) -> bool:
    """`pulumi up` hands the program Pulumi.yaml's default of every key the stack leaves unset
    (ValidateStackConfigAndApplyProjectConfig): only another value was set by someone."""
    raw = cfg.raw(key)
    if raw is None:
        return False
    if key == NODE_SELECTOR_KEY:
        return bool(cfg.structured(key) != {})
    if key == TOLERATIONS_KEY:
        return bool(cfg.structured(key) != [dict(t) for t in DEFAULT_TOLERATIONS])
    return raw != str(DEFAULTS[key])


def _node_selector(cfg: Reader) -> dict[str, str]:
    value = cfg.structured(NODE_SELECTOR_KEY)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise cfg.fail(NODE_SELECTOR_KEY, f"must be a map of node labels to values, like pulumi config set --path "
                                          f"'{NODE_SELECTOR_KEY}[\"cloud.google.com/gke-accelerator\"]' "
                                          f"nvidia-h100-80gb (got {value!r})")
    for key, label in value.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(label):
            raise cfg.fail(NODE_SELECTOR_KEY, f"must name node labels as Kubernetes writes them ([prefix/]name, a "
                                              f"value of 63 letters, digits, '-', '_', '.' at most; got "
                                              f"{key!r}: {label!r})")
    return dict(value)


def _tolerations(cfg: Reader) -> tuple[dict[str, str], ...]:
    value = cfg.structured(TOLERATIONS_KEY)
    if value is None:
        return DEFAULT_TOLERATIONS
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise cfg.fail(TOLERATIONS_KEY, f"must be a list of tolerations, like [{{\"key\": \"nvidia.com/gpu\", "
                                        f"\"operator\": \"Exists\", \"effect\": \"NoSchedule\"}}] (got {value!r})")
    return tuple(_toleration(cfg, item) for item in value)


def _toleration(cfg: Reader, item: dict[str, Any]) -> dict[str, str]:
    """One toleration, checked as the API server's ValidateTolerations checks it (kubernetes
    pkg/apis/core/validation: no value with Exists, a key unless Exists), so the preview says it first."""
    if unknown := sorted(set(item) - set(TOLERATION_FIELDS)):
        fields = ", ".join(TOLERATION_FIELDS)
        raise cfg.fail(TOLERATIONS_KEY, f"holds {', '.join(unknown)}: a toleration here has {fields} only "
                                        "(tolerationSeconds would let the GPU node's eviction cut the calls)")
    if not all(isinstance(v, str) for v in item.values()):
        raise cfg.fail(TOLERATIONS_KEY, f"must give each field as text (got {item!r})")
    operator, effect = item.get("operator", "Equal"), item.get("effect", "")
    if operator not in OPERATORS or (effect and effect not in EFFECTS):
        raise cfg.fail(TOLERATIONS_KEY, f"must have an operator of {' or '.join(OPERATORS)} and an effect of "
                                        f"{', '.join(EFFECTS)} or none (got {item!r})")
    if operator == "Exists" and item.get("value"):
        raise cfg.fail(TOLERATIONS_KEY, f"has a value with the operator Exists, which the API server refuses "
                                        f"(got {item!r}): drop the value, or use Equal")
    if not item.get("key") and operator != "Exists":
        raise cfg.fail(TOLERATIONS_KEY, f"needs a key unless its operator is Exists (got {item!r})")
    return {field: item[field] for field in TOLERATION_FIELDS if field in item}
