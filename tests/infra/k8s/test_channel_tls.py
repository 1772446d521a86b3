"""`k8sChannelTls`: the stack's own CA and channel certificate (the default), or a mesh's mTLS (none of them)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from stacks.k8s.channel_tls import CA_CONFIGMAP, CERT_FILE, KEY_FILE, MOUNT_DIR, NOTE_CERTIFICATE, SECRET_NAME
from stacks.shared import contract
from stacks.tools.mocks import Run, is_secret, unwrap
from tests.infra.helpers import component_outputs
from tests.infra.k8s.conftest import K8sRunner, container_env, pod_spec, spec
from tests.infra.k8s.test_agent_sandbox import DEPLOYER, TEMPLATE, body, default

SERVICE_NAMES = ["dispatcher.voicefleet.svc", "dispatcher.voicefleet.svc.cluster.local"]
TLS_TYPES = ("tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
             "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert")


def inputs(run: Run, typ: str) -> dict[str, Any]:
    return unwrap(run.one(typ).inputs)


def test_the_stack_makes_a_ca_and_a_leaf_for_the_services_names(k8s: Run) -> None:
    ca = inputs(k8s, "tls:index/selfSignedCert:SelfSignedCert")
    assert ca["isCaCertificate"] is True and "cert_signing" in ca["allowedUses"]
    request = inputs(k8s, "tls:index/certRequest:CertRequest")
    assert request["dnsNames"] == SERVICE_NAMES and not request.get("ipAddresses")
    leaf = inputs(k8s, "tls:index/locallySignedCert:LocallySignedCert")
    assert leaf["caCertPem"] == unwrap(k8s.one("tls:index/selfSignedCert:SelfSignedCert").outputs)["certPem"]
    assert leaf["certRequestPem"] == unwrap(k8s.one("tls:index/certRequest:CertRequest").outputs)["certRequestPem"]
    assert "server_auth" in leaf["allowedUses"] and not leaf.get("isCaCertificate")
    # Renewed by an `up` inside the window, long before its end; the CA outlives many leaves.
    assert 0 < leaf["earlyRenewalHours"] < leaf["validityPeriodHours"] <= ca["validityPeriodHours"] // 5
    assert 0 < ca["earlyRenewalHours"] < ca["validityPeriodHours"]
    keys = [unwrap(r.inputs) for r in k8s.of_type("tls:index/privateKey:PrivateKey")]
    assert len(keys) == 2 and all(key["algorithm"] == "ECDSA" for key in keys)


def test_the_key_is_a_secret_mounted_into_the_dispatcher_never_in_its_environment(k8s: Run) -> None:
    (secret,) = [r for r in k8s.of_type("kubernetes:core/v1:Secret") if not r.name.endswith("-dispatcher")]
    held = unwrap(secret.inputs)
    assert held["type"] == "kubernetes.io/tls" and held["metadata"]["name"] == SECRET_NAME
    assert held["metadata"]["namespace"] == "voicefleet"
    assert is_secret(secret.inputs["stringData"]) or is_secret(secret.inputs["stringData"]["tls.key"])
    key = unwrap(k8s.one("tls:index/privateKey:PrivateKey", "voicefleet-k8s-test-leaf").outputs)["privateKeyPem"]
    assert held["stringData"]["tls.key"] == key
    pod = pod_spec(k8s)
    assert pod["volumes"] == [{"name": "channel-tls", "secret": {"secretName": SECRET_NAME, "defaultMode": 0o444}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [{"name": "channel-tls", "mountPath": MOUNT_DIR, "readOnly": True}]
    env = container_env(k8s)
    assert env["BOT_CHANNEL_TLS_CERT_FILE"]["value"] == CERT_FILE
    assert env["BOT_CHANNEL_TLS_KEY_FILE"]["value"] == KEY_FILE
    assert key not in str(env) and "PRIVATE KEY" not in str(env)
    assert env["BOT_CHANNEL_URL"]["value"] == "wss://dispatcher.voicefleet.svc:8081/bots/channel"
    # A new leaf is a new pod template: the replicas roll onto it.
    annotations = spec(k8s.one("kubernetes:apps/v1:Deployment"))["template"]["metadata"]["annotations"]
    leaf = unwrap(k8s.one("tls:index/locallySignedCert:LocallySignedCert").outputs)["certPem"]
    assert annotations[NOTE_CERTIFICATE] == hashlib.sha256(leaf.encode()).hexdigest()[:16]
    assert secret.urn in k8s.one("kubernetes:apps/v1:Deployment").dependencies


def test_the_outputs_say_when_the_certificate_and_the_ca_end(k8s: Run, k8s_stack: K8sRunner) -> None:
    """What an operator checks the renewal by (docs/kubernetes.md, "The channel's TLS")."""
    outputs = component_outputs(k8s, "k8s")
    leaf = unwrap(k8s.one("tls:index/locallySignedCert:LocallySignedCert").outputs)
    ca = unwrap(k8s.one("tls:index/selfSignedCert:SelfSignedCert").outputs)
    assert outputs["channelCertificateExpires"] == leaf["validityEndTime"]
    assert outputs["channelCaExpires"] == ca["validityEndTime"]
    mesh = component_outputs(k8s_stack(k8sChannelTls="cilium"), "k8s")
    assert "channelCertificateExpires" not in mesh and "channelCaExpires" not in mesh


def test_the_ca_is_a_configmap_in_the_bots_namespace_that_the_bots_mount(k8s: Run) -> None:
    configmap = inputs(k8s, "kubernetes:core/v1:ConfigMap")
    assert configmap["metadata"] == {**configmap["metadata"], "name": CA_CONFIGMAP, "namespace": "voicefleet-bots"}
    ca = unwrap(k8s.one("tls:index/selfSignedCert:SelfSignedCert").outputs)["certPem"]
    assert configmap["data"] == {"ca.crt": ca}
    # The dispatcher's pods project it beside the token: K8S_BOT_CHANNEL_CA_CONFIGMAP.
    assert container_env(k8s)["K8S_BOT_CHANNEL_CA_CONFIGMAP"]["value"] == CA_CONFIGMAP


def test_the_pool_template_mounts_the_ca_and_waits_for_it(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer=DEPLOYER)
    pod = body(default(run, TEMPLATE))["spec"]["podTemplate"]["spec"]
    sources = pod["volumes"][0]["projected"]["sources"]
    assert {"configMap": {"name": CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "channel-ca.crt"}]}} in sources
    env = {entry["name"]: entry["value"] for entry in pod["containers"][0]["env"]}
    assert env["BOT_CHANNEL_URL"].startswith("wss://") and env["BOT_CHANNEL_CA_FILE"].endswith("/channel-ca.crt")
    assert run.one("kubernetes:core/v1:ConfigMap").urn in default(run, TEMPLATE).dependencies


@pytest.mark.parametrize("mesh", ["istio-ambient", "cilium"])
@pytest.mark.parametrize("mode", ["pods", "agent-sandbox"])
def test_with_a_mesh_the_stack_makes_no_certificate_and_bots_dial_ws(k8s_stack: K8sRunner, mode: str,
                                                                      mesh: str) -> None:
    run = k8s_stack(k8sChannelTls=mesh, k8sMode=mode, **({"k8sDeployer": DEPLOYER} if mode != "pods" else {}))
    assert [r.type for r in run.registrations if r.type in TLS_TYPES] == []
    assert run.of_type("kubernetes:core/v1:ConfigMap") == []
    assert [r.name for r in run.of_type("kubernetes:core/v1:Secret")] == ["voicefleet-k8s-test-dispatcher"]
    env = container_env(run)
    assert env["BOT_CHANNEL_URL"]["value"] == "ws://dispatcher.voicefleet.svc:8081/bots/channel"
    assert not set(contract.K8S_CHANNEL_TLS_ENV) & set(env)
    pod = pod_spec(run)
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


def test_an_unnamed_mesh_is_refused_naming_the_meshes_that_work_and_the_way_out(k8s_stack: K8sRunner) -> None:
    """A sidecar mesh's injected proxy and init container are refused by the bots' admission policy and Pod
    Security restricted: `mesh` alone could be one, so it is refused, naming the two that add nothing to a pod."""
    with pytest.raises(SettingsError) as refused:
        k8s_stack(k8sChannelTls="mesh")
    message = str(refused.value)
    assert "voicefleet:k8sChannelTls is 'mesh': name the mesh, istio-ambient" in message
    assert "cilium" in message and "Linkerd" in message
    assert "`pulumi config set k8sChannelTls stack`" in message


def test_an_unknown_channel_tls_is_refused_by_name(k8s_stack: K8sRunner) -> None:
    with pytest.raises(Exception, match="k8sChannelTls"):
        k8s_stack(k8sChannelTls="off")
