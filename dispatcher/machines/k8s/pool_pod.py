"""A pool bot's pod, pinned as far as the dispatcher knows the SandboxTemplate's pod without trusting
more of it than its image (the template is as writable as the pods it makes):

- no ephemeral containers: one (`pods/ephemeralcontainers`) runs any image in the bot's pod, beside
  its projected token;
- every container, init containers too, runs one image the dispatcher accepts (BOT_IMAGE, or while a
  new image rolls out the one the pool's template names: k8s/pool_bots.py) with the image's own
  entrypoint and arguments (no `command`, no `args`): `python -I -m bot`, which ignores PYTHON*
  variables and refuses the loader's LD_* ones (bot/environment_check.py);
- every container's `BOT_CHANNEL_URL` is this dispatcher's channel, set in the spec (a `value`, not
  a reference) as `pod_body` writes it (`$` doubled, so the kubelet's `$(NAME)` expansion gives the bot
  that text): a bot sent elsewhere would hand its pod's token to whoever listens there.

That is all it checks. It does not make the pod run the bot and nothing else: a `lifecycle` hook or an
`exec` probe runs any command in BOT_IMAGE beside the pod's token, a volume mounted over the bot's
code replaces it, and the pod's other variables, volumes, resources and placement pass as they are.
For all of that the SandboxTemplate (and the Sandboxes made from it) is trusted, and so whoever may
write them: the admission policy lets only voicefleet's deployer and agent-sandbox's controller
(docs/kubernetes.md, "What no read can prove").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from botchannel.contract import CHANNEL_URL_VARIABLE
from dispatcher.machines.k8s.pods import unexpanded


def _containers(spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every container, init containers first; the main containers) of a pod's spec."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return [c for c in spec.get("initContainers") or [] if isinstance(c, dict)] + containers, containers


def pod_images(spec: Mapping[str, Any]) -> set[str]:
    """The images a pod's spec (or a template's pod spec) runs, init containers too."""
    return {str(c.get("image", "")) for c in _containers(spec)[0]}


def pool_pod_problem(name: str, pod: Mapping[str, Any], *, images: Collection[str],
                     channel_url: str | None) -> str | None:
    """Why the pod is not a pool bot's pod as the module pins it, or None; `images`: those accepted."""
    spec = pod.get("spec") or {}
    if spec.get("ephemeralContainers"):
        return f"pod {name} has ephemeral containers: a pool bot's pod runs its bot alone"
    every, containers = _containers(spec)
    runs = pod_images(spec)
    if len(runs) != 1 or not runs <= set(images):
        return (f"pod {name} runs {', '.join(sorted(runs))[:200] or 'nothing'}, not the bot's image (BOT_IMAGE) "
                "nor the one its pool's template names")
    if any(c.get("command") or c.get("args") for c in every):
        return f"pod {name} overrides its image's command or arguments: a pool bot runs BOT_IMAGE's own entrypoint"
    if channel_url is not None:
        for container in containers:
            if (dials := _literal_env(container, CHANNEL_URL_VARIABLE)) != unexpanded(channel_url):
                return (f"pod {name}'s container {container.get('name')} dials {str(dials)[:200]}, not this "
                        f"dispatcher's channel ({CHANNEL_URL_VARIABLE})")
    return None


def _literal_env(container: Mapping[str, Any], variable: str) -> str | None:
    """The variable's value as the container's spec sets it (the last entry wins, as the kubelet reads
    them); None when it is unset or taken from elsewhere (`valueFrom`, `envFrom`)."""
    value = None
    for entry in container.get("env") or []:
        if isinstance(entry, dict) and entry.get("name") == variable:
            value = entry.get("value") if "valueFrom" not in entry else None
    return value
