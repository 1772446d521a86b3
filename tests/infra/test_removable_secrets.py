"""A prod stack can drop the secrets it is meant to drop: the accepted message secret (step 3 of the
rotation, docs/pulumi.md) and the optional webhook and collector secrets. Pulumi refuses a deployment
that deletes a protected resource ("Resource option: protect"), so nothing that exists only while one
of those keys is set may be protected; the long-lived secrets stay protected."""

from __future__ import annotations

import pytest

from tests.infra.config.test_observability import OBSERVABILITY
from tests.infra.config.test_store_message_secret import AWS_REPLICAS, AWS_STORE, GCP_REPLICAS, WITH_ACCEPTED
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner

OPTIONAL = {"otelExporterOtlpEndpoint": "https://otlp.example.com", "webhookUrl": "https://hooks.example.com/vf"}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_removing_the_accepted_or_an_optional_secret_deletes_nothing_protected(stack: StackRunner,
                                                                                cloud: str) -> None:
    replicas = AWS_REPLICAS if cloud == "aws" else GCP_REPLICAS
    during = stack(cloud, secrets={**WITH_ACCEPTED, **OBSERVABILITY}, protect="true", **OPTIONAL, **replicas)
    after = stack(cloud, secrets={**SECRETS, **CHANNEL_SECRETS, **AWS_STORE}, protect="true", **replicas)
    dropped = [r for r in during.registrations if r.urn not in {a.urn for a in after.registrations}]
    names = " ".join(r.name for r in dropped if r.type.endswith(":Secret"))
    assert all(key in names for key in ("accepted-message-secret", "webhook-secret", "otlp-headers")), names
    assert [r.name for r in dropped if r.protect] == []
    kept = [r for r in after.registrations if r.type.endswith(":Secret")]
    assert kept and all(r.protect for r in kept)  # the long-lived ones still are


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_turning_whatsapp_off_deletes_nothing_protected(stack: StackRunner, cloud: str) -> None:
    """Its four keys go together; its secrets are credentials Meta reissues, not state."""
    from tests.infra.config.test_whatsapp import NUMBERS, WHATSAPP

    during = stack(cloud, secrets={**SECRETS, **WHATSAPP}, protect="true", whatsappNumbers=NUMBERS)
    after = stack(cloud, secrets=SECRETS, protect="true")
    dropped = [r for r in during.registrations if r.urn not in {a.urn for a in after.registrations}]
    assert any("whatsapp" in r.name for r in dropped if r.type.endswith(":Secret"))
    assert [r.name for r in dropped if r.protect] == []
