"""The Azure stack under Pulumi mocks: first up, second up, a secret rotation, destroy ordering,
who may do what, and the dispatcher's contract with the `aci` provider."""

from __future__ import annotations

import json

from stacks.azure import identity, naming
from stacks.azure.dispatcher import PROBE_PATH, SECRETS_DIGEST_VARIABLE
from stacks.azure.secrets import UNSET_TAG, UNSET_VALUE
from stacks.config.store import ACCEPTED_MESSAGE_SECRET_KEY
from stacks.shared import contract
from stacks.tools.mocks import Registration, Run, unwrap
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner

APP = "azure-native:app:ContainerApp"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE = "azure-native:authorization:RoleDefinition"
SECRET = "azure-native:keyvault:Secret"
REPLICAS = {"dispatcherMinReplicas": "2", "dispatcherMaxReplicas": "4"}
STORE_SECRET = {"voicefleet:storeMessageSecret": SECRETS["voicefleet:storeMessageSecret"]}


def app(run: Run) -> dict:
    return unwrap(run.one(APP).inputs)


def env(run: Run) -> dict[str, dict]:
    (container,) = app(run)["template"]["containers"]
    return {e["name"]: e for e in container["env"]}


def by_urn(run: Run) -> dict[str, Registration]:
    return {r.urn: r for r in run.registrations}


def test_every_azure_resource_goes_through_the_stacks_provider_and_tracked_ones_carry_the_tags(azure: Run) -> None:
    resources = [r for r in azure.registrations if r.type.startswith("azure-native:") and r.custom]
    assert resources and all("pulumi:providers:azure-native" in r.provider for r in resources)
    tracked = [unwrap(r.inputs) for r in resources if "location" in r.inputs]
    assert tracked and all({"project", "stack", "environment", "managed-by"} <= set(t.get("tags", {}))
                           for t in tracked)


def test_the_registry_has_no_admin_user_and_both_images_are_pinned_by_digest(azure: Run) -> None:
    registry = unwrap(azure.one("azure-native:containerregistry:Registry").inputs)
    assert registry["adminUserEnabled"] is False and registry["anonymousPullEnabled"] is False
    image = unwrap(app(azure)["template"]["containers"][0]["image"])
    assert "@sha256:" in image and image.startswith(f"{registry['registryName']}.azurecr.io/dispatcher")
    assert "@sha256:" in env(azure)["ACI_BOT_IMAGE"]["value"]
    # The app pulls with its identity, never a password.
    assert app(azure)["configuration"]["registries"] == [
        {"server": f"{registry['registryName']}.azurecr.io", "identity": env_identity(azure)}]


def env_identity(run: Run) -> str:
    return app(run)["identity"]["userAssignedIdentities"][0]


def test_the_dispatcher_environment_is_what_the_aci_provider_reads(azure: Run) -> None:
    names = set(env(azure))
    plain = {name for name, e in env(azure).items() if "value" in e}
    assert plain == {*contract.ACI_ENV, SECRETS_DIGEST_VARIABLE}
    assert names - plain == set(contract.DISPATCHER_SECRETS)


def test_secrets_reach_the_app_only_as_versioned_key_vault_references_read_with_its_identity(azure: Run) -> None:
    secrets = app(azure)["configuration"]["secrets"]
    assert {s["name"] for s in secrets} == {"daily-api-key", "dispatcher-api-keys", "dispatcher-admin-keys"}
    for secret in secrets:
        assert set(secret) == {"name", "keyVaultUrl", "identity"} and secret["identity"] == env_identity(azure)
        # …/secrets/<name>/<version>: pinned, so a rotation is a diff that rolls a revision.
        assert secret["keyVaultUrl"].split("/")[-2] == secret["name"] and len(secret["keyVaultUrl"].split("/")) == 6
    assert env(azure)["DAILY_API_KEY"] == {"name": "DAILY_API_KEY", "secretRef": "daily-api-key"}


def test_the_key_vault_is_in_rbac_mode_and_the_dispatcher_reads_exactly_its_secrets(azure: Run) -> None:
    vault = unwrap(azure.one("azure-native:keyvault:Vault").inputs)
    assert vault["properties"]["enableRbacAuthorization"] is True and "accessPolicies" not in vault["properties"]
    reads = [unwrap(r.inputs) for r in azure.of_type(ASSIGNMENT)
             if unwrap(r.inputs)["roleDefinitionId"].endswith(identity.KEY_VAULT_SECRETS_USER)]
    secret_ids = sorted(r.outputs["id"] for r in azure.of_type(SECRET) if UNSET_TAG not in unwrap(r.inputs)["tags"])
    assert sorted(r["scope"] for r in reads) == secret_ids  # one per secret set, none on the vault


def test_the_dispatcher_may_launch_container_groups_in_its_resource_group_only(azure: Run) -> None:
    group_id = azure.one("azure-native:resources:ResourceGroup").outputs["id"]
    prefix = "voicefleet-azure-test-"
    roles = {r.name.removeprefix(prefix): unwrap(r.inputs) for r in azure.of_type(ROLE)}
    assert roles["launch"]["permissions"] == [{"actions": list(identity.LAUNCH_ACTIONS), "notActions": []}]
    assert roles["launch"]["assignableScopes"] == [group_id] and roles["launch"]["scope"] == group_id
    assert not any("*" in action for role in roles.values() for action in role["permissions"][0]["actions"])
    bot = azure.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-bot").outputs
    # Custom roles are assignable on groups, not single resources: defined on the group, assigned on the identity.
    assert roles["assign-bot"]["assignableScopes"] == [group_id]
    assert roles["assign-bot"]["permissions"][0]["actions"] == list(identity.ASSIGN_ACTIONS)
    assigned = unwrap(azure.one(ASSIGNMENT, "voicefleet-azure-test-dispatcher-assign-bot").inputs)
    assert assigned["scope"] == bot["id"]


def test_the_dispatcher_may_join_the_bots_subnet_and_no_other(azure: Run) -> None:
    """Joining a subnet is what places a container group in it: granted on the bots' subnet alone, the
    dispatcher's token cannot put a group beside the store's and Key Vault's endpoints or the relay,
    even where the launch policy did not hold."""
    join = "Microsoft.Network/virtualNetworks/subnets/join/action"
    vnet = azure.one("azure-native:network:VirtualNetwork").outputs["id"]
    joining = {r.outputs["id"] for r in azure.of_type(ROLE) if join in unwrap(r.inputs)["permissions"][0]["actions"]}
    scopes = [unwrap(a.inputs)["scope"] for a in azure.of_type(ASSIGNMENT)
              if unwrap(a.inputs)["roleDefinitionId"] in joining]
    assert scopes == [f"{vnet}/subnets/bots"]
    dispatcher = azure.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-dispatcher")
    assert {unwrap(a.inputs)["principalId"] for a in azure.of_type(ASSIGNMENT)
            if unwrap(a.inputs)["roleDefinitionId"] in joining} == {dispatcher.outputs["principalId"]}


def test_the_launch_role_loses_the_join_action_only_after_the_subnet_grant_exists(azure: Run) -> None:
    """A stack deployed when the launch role held the join action: the `up` that moves it to the
    subnet must not take it off the role (an update) before the subnet's grant is created, or a
    launch in between is refused its subnet (LinkedAuthorizationFailed)."""
    join = "Microsoft.Network/virtualNetworks/subnets/join/action"
    joining = {r.outputs["id"] for r in azure.of_type(ROLE) if join in unwrap(r.inputs)["permissions"][0]["actions"]}
    (grant,) = [a for a in azure.of_type(ASSIGNMENT) if unwrap(a.inputs)["roleDefinitionId"] in joining]
    create = "Microsoft.ContainerInstance/containerGroups/write"
    (launch,) = [r for r in azure.of_type(ROLE) if create in unwrap(r.inputs)["permissions"][0]["actions"]]
    assert grant.urn in launch.dependencies


def test_the_bots_identity_may_pull_images_and_nothing_else(azure: Run) -> None:
    bot = azure.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-bot").outputs
    registry = azure.one("azure-native:containerregistry:Registry").outputs["id"]
    granted = [unwrap(r.inputs) for r in azure.of_type(ASSIGNMENT)
               if unwrap(r.inputs)["principalId"] == bot["principalId"]]
    assert [(g["roleDefinitionId"].rsplit("/", 1)[-1], g["scope"]) for g in granted] == [(identity.ACR_PULL, registry)]


def test_probes_drain_and_https_only_ingress(azure: Run, stack: StackRunner) -> None:
    (container,) = app(azure)["template"]["containers"]
    assert {p["type"] for p in container["probes"]} == {"Startup", "Liveness", "Readiness"}
    assert all(p["httpGet"]["path"] == PROBE_PATH for p in container["probes"])
    assert app(azure)["configuration"]["ingress"]["allowInsecure"] is False
    # The default 1800 s session is longer than Container Apps allows: the grace is its ceiling.
    assert app(azure)["template"]["terminationGracePeriodSeconds"] == 600
    short = stack("azure", maxSessionSeconds="300")
    assert app(short)["template"]["terminationGracePeriodSeconds"] == 360
    drained = app(stack("azure", drain="true"))
    assert "ingress" not in drained["configuration"] and drained["template"]["scale"]["minReplicas"] == 0


def test_a_second_up_registers_the_same_resources_with_the_same_inputs(stack: StackRunner) -> None:
    first, second = stack("azure", **REPLICAS, secrets={**SECRETS}), stack("azure", **REPLICAS, secrets={**SECRETS})
    assert ({r.urn: unwrap(r.inputs) for r in first.registrations}
            == {r.urn: unwrap(r.inputs) for r in second.registrations})


def test_a_rotated_secret_changes_its_vault_secret_and_the_apps_reference_and_nothing_else(stack: StackRunner) -> None:
    before = stack("azure")
    after = stack("azure", secrets={**SECRETS, "voicefleet:dailyApiKey": "SENTINEL-rotated-daily-key-9c1d"})
    old, new = by_urn(before), by_urn(after)
    assert old.keys() == new.keys()
    changed = sorted(new[urn].name for urn in new if unwrap(new[urn].inputs) != unwrap(old[urn].inputs))
    assert changed == ["voicefleet-azure-test-daily-api-key", "voicefleet-azure-test-dispatcher"]
    urls = [{s["name"]: s["keyVaultUrl"] for s in app(run)["configuration"]["secrets"]} for run in (before, after)]
    assert urls[0]["daily-api-key"] != urls[1]["daily-api-key"]
    assert urls[0]["dispatcher-api-keys"] == urls[1]["dispatcher-api-keys"]
    # …and the template too: app-scoped secrets alone start no revision, so no replica would read it.
    digests = [env(run)[SECRETS_DIGEST_VARIABLE]["value"] for run in (before, after)]
    assert digests[0] != digests[1]


def test_an_unset_rotation_secret_stays_in_the_vault_so_setting_it_again_is_a_new_version(stack: StackRunner) -> None:
    """Deleted, the secret would stay soft-deleted for the vault's retention and setting the key again
    in that time is refused 409 (on a purge-protected vault, for 90 days): so unsetting it writes a
    placeholder version instead, which nothing references or may read."""
    accepted = {f"voicefleet:{ACCEPTED_MESSAGE_SECRET_KEY}": "SENTINEL-accepted-message-secret-0123456789"}
    during = stack("azure", **REPLICAS, protect="true", secrets={**SECRETS, **accepted})
    after = stack("azure", **REPLICAS, protect="true", secrets={**SECRETS})
    name = "voicefleet-azure-test-redis-accepted-message-secret"
    dropped = [r for r in during.registrations if r.urn not in {a.urn for a in after.registrations}]
    assert [r.type for r in dropped] == [ASSIGNMENT]  # the dispatcher's read of it, and no secret
    kept = unwrap(after.one(SECRET, name).inputs)
    assert kept["properties"]["value"] == UNSET_VALUE and kept["tags"][UNSET_TAG] == "true"
    assert kept["secretName"] == unwrap(during.one(SECRET, name).inputs)["secretName"]
    assert "redis-accepted-message-secret" in {s["name"] for s in app(during)["configuration"]["secrets"]}
    assert "redis-accepted-message-secret" not in {s["name"] for s in app(after)["configuration"]["secrets"]}
    assert after.one(SECRET, name).outputs["id"] not in {unwrap(r.inputs)["scope"] for r in after.of_type(ASSIGNMENT)}
    assert not after.one(SECRET, name).protect


def test_destroy_deletes_the_app_before_the_grants_and_secrets_it_needs(azure: Run) -> None:
    """Pulumi deletes a resource before everything it depends on: the app goes first, so no revision
    runs without its pull, launch or secret grants, and no grant outlives its identity."""
    dispatcher_app = azure.one(APP)
    held = [r for r in azure.of_type(ASSIGNMENT) if not r.name.endswith("-deployer")]  # the identities' grants
    assert {r.urn for r in held} <= set(dispatcher_app.dependencies)
    identities = {r.urn for r in azure.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    for grant in held:
        assert identities & set(grant.dependencies), grant.name


def test_the_deployer_may_delete_the_vaults_secrets_until_the_last_is_gone(azure: Run) -> None:
    """pulumi-azure-native deletes a secret through the vault's data plane, as the deployer: in RBAC
    mode without Key Vault Secrets Officer a removed secret or a destroy is refused (403)."""
    (deployer,) = [r for r in azure.of_type(ASSIGNMENT) if r.name.endswith("-deployer")]
    inputs = unwrap(deployer.inputs)
    assert inputs["roleDefinitionId"].endswith("/b86a8fe4-44ce-4948-aee5-eccb2c155cd7")  # Key Vault Secrets Officer
    assert inputs["scope"] == unwrap(azure.one("azure-native:keyvault:Vault").outputs)["id"]
    secrets = azure.of_type("azure-native:keyvault:Secret")
    assert secrets and all(deployer.urn in s.dependencies for s in secrets)  # deleted after every secret


def test_several_replicas_share_a_tls_only_private_store_whose_key_comes_from_key_vault(stack: StackRunner) -> None:
    run = stack("azure", **REPLICAS)
    cluster = unwrap(run.one("azure-native:redisenterprise:RedisEnterprise").inputs)
    database = unwrap(run.one("azure-native:redisenterprise:Database").inputs)
    assert cluster["publicNetworkAccess"] == "Disabled" and cluster["minimumTlsVersion"] == "1.2"
    assert database["clientProtocol"] == "Encrypted" and database["clusteringPolicy"] == "NoCluster"
    assert env(run)["REDIS_URL"]["value"].startswith("rediss://")
    assert env(run)["REDIS_PASSWORD"] == {"name": "REDIS_PASSWORD", "secretRef": "redis-password"}
    assert "mock-redis-primary-key" not in json.dumps(app(run))
    endpoint = unwrap(run.one("azure-native:network:PrivateEndpoint", "voicefleet-azure-test-store").inputs)
    assert endpoint["privateLinkServiceConnections"][0]["groupIds"] == ["redisEnterprise"]
    # The app waits for the database and its DNS record: a replica starting earlier finds no store.
    store_parts = {r.urn for r in run.registrations if r.type in ("azure-native:redisenterprise:Database",
                                                                  "azure-native:network:PrivateDnsZoneGroup")}
    assert store_parts <= set(run.one(APP).dependencies)


def test_one_replica_has_no_store(azure: Run) -> None:
    assert not [r for r in azure.registrations if r.type.startswith("azure-native:redisenterprise:")]
    assert "REDIS_URL" not in env(azure)


def test_the_channel_url_is_the_apps_own_https_name(stack: StackRunner) -> None:
    run = stack("azure", secrets={**SECRETS, **CHANNEL_SECRETS})
    url = env(run)["BOT_CHANNEL_URL"]["value"]
    assert url.startswith(f"wss://{naming.container_app_name('azure-test')}.") and url.endswith("/bots/channel")
    assert env(run)["BOT_CHANNEL_TOKEN"] == {"name": "BOT_CHANNEL_TOKEN", "secretRef": "bot-channel-token"}


def test_bots_leave_through_the_nat_gateway_on_udp_and_https_only(azure: Run) -> None:
    vnet = unwrap(azure.one("azure-native:network:VirtualNetwork").inputs)
    bots = next(s for s in vnet["subnets"] if s["name"] == "bots")
    assert bots["delegations"][0]["serviceName"] == "Microsoft.ContainerInstance/containerGroups"
    assert bots["defaultOutboundAccess"] is False and "natGateway" in bots
    rules = unwrap(azure.one("azure-native:network:NetworkSecurityGroup").inputs)["securityRules"]
    allowed = sorted((r["direction"], r["protocol"], r["destinationPortRange"])
                     for r in rules if r["access"] == "Allow")
    assert allowed == [("Outbound", "Tcp", "443"), ("Outbound", "Udp", "*")]
    # Only to the internet: the virtual network (the store's private endpoint) is denied too.
    assert {r["destinationAddressPrefix"] for r in rules if r["access"] == "Allow"} == {"Internet"}
    assert any(r["access"] == "Deny" and r["direction"] == "Outbound" and r["destinationAddressPrefix"] == "*"
               for r in rules)
    assert ("Inbound", "Deny") in {(r["direction"], r["access"]) for r in rules}


def test_bot_keys_reach_bots_through_the_dispatcher_by_key_vault_reference_only(stack: StackRunner) -> None:
    keys = {"voicefleet:deepgramApiKey": "SENTINEL-dg-key", "voicefleet:cartesiaApiKey": "SENTINEL-ca-key",
            "voicefleet:openaiApiKey": "SENTINEL-oa-key"}
    run = stack("azure", secrets={**SECRETS, **keys})
    references = dict(pair.split("=", 1) for pair in env(run)["ACI_BOT_SECRETS"]["value"].split(","))
    assert set(references) == {"CARTESIA_API_KEY", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"}
    assert all(url.startswith("https://") and "/secrets/" in url for url in references.values())
    assert not [name for name in env(run) if name in references]  # not the dispatcher's own variables
    dispatcher = run.one("azure-native:managedidentity:UserAssignedIdentity", "voicefleet-azure-test-dispatcher")
    readable = {unwrap(r.inputs)["scope"] for r in run.of_type(ASSIGNMENT)
                if unwrap(r.inputs)["principalId"] == dispatcher.outputs["principalId"]}
    secret_ids = {r.outputs["id"] for r in run.of_type(SECRET) if r.name.endswith(("deepgram-api-key",
                                                                                  "cartesia-api-key",
                                                                                  "openai-api-key"))}
    assert len(secret_ids) == 3 and secret_ids <= readable


def test_the_drain_finds_the_stacks_container_groups_from_its_outputs(azure: Run) -> None:
    from tests.infra.helpers import component_outputs

    machines = component_outputs(azure, "azure")["machinesEnvironment"]
    assert machines == {"MACHINES": "aci", "AZURE_SUBSCRIPTION_ID": "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                        "AZURE_RESOURCE_GROUP": "voicefleet-azure-test", "AZURE_LOCATION": "westeurope",
                        "ACI_GROUP_PREFIX": "vf-azure-test", "RELEASES": env(azure)["RELEASES"]["value"]}
