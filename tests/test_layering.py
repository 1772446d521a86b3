"""Imports point one way: a lower layer never imports a higher one, and no module imports itself
back through others. Every import counts, including those inside functions and under
`TYPE_CHECKING`: a cycle that only type checkers see is still two modules that cannot be read
apart. The layers are the ones `dispatcher/__init__.py` and docs/architecture.md describe."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("voicefleet_settings", "botchannel", "bot", "dispatcher", "sipedge", "examples", "images", "stacks",
            "policy")

# Inside the dispatcher, lowest first; a module may import only from its own layer or lower ones.
# A layer names packages (`dispatcher.api`) or single modules (`dispatcher.settings`).
DISPATCHER_LAYERS: list[tuple[str, ...]] = [
    ("dispatcher.settings", "dispatcher.errors", "dispatcher.api_error", "dispatcher.numbers", "dispatcher.recent",
     "dispatcher.observability"),
    ("dispatcher.store",),
    ("dispatcher.releases",),
    ("dispatcher.outbound",),
    ("dispatcher.channel",),
    ("dispatcher.machines",),
    ("dispatcher.media",),
    ("dispatcher.artifacts",),
    ("dispatcher.reserve",),
    ("dispatcher.regions",),
    ("dispatcher.models",),  # the shared model service of converged bots: read over outbound/, asked by sessions/
    # What a call's services cost and the usage sums: priced below the sessions (their cost reads the
    # table), counted above them (the count reads a session's timeline).
    ("dispatcher.usage.price_table", "dispatcher.usage.service_cost", "dispatcher.usage.rollups",
     "dispatcher.usage.key_metrics", "dispatcher.usage.relay_price", "dispatcher.usage.relay_cost",
     "dispatcher.usage.service_bounds", "dispatcher.usage.trunk_line", "dispatcher.usage.telephony_cost"),
    ("dispatcher.sessions",),
    ("dispatcher.usage",),
    ("dispatcher.phone", "dispatcher.whatsapp"),
    ("dispatcher.api", "dispatcher.campaigns"),  # a campaign's rows are placed as `POST /calls` places a call
    ("dispatcher.app", "dispatcher.wiring", "dispatcher.factory", "dispatcher.__main__", "dispatcher.serving",
     "dispatcher"),
]
# Inside stacks/, lowest first: reading and validating config (imports no component) beside the
# package's face (`stacks/__init__.py`, which `from stacks import contract` runs, so it imports
# nothing), the contracts both clouds share, the components per cloud, the stack classes that
# compose them, then the tools people run (plan, drain, import, preflight, their mocks) and the shims
# that keep their commands short.
STACKS_LAYERS: list[tuple[str, ...]] = [
    ("stacks", "stacks.config"),
    ("stacks.shared", "stacks.shared.contract", "stacks.shared.turn_server", "stacks.shared.releases",
     "stacks.shared.release_builds", "stacks.shared.store_access"),
    ("stacks.aws", "stacks.gcp", "stacks.azure", "stacks.k8s"),
    ("stacks.aws.stack", "stacks.gcp.stack", "stacks.azure.stack", "stacks.k8s.stack"),
    ("stacks.tools", "stacks.plan", "stacks.drain", "stacks.import_pcc"),
]
# The dispatcher's root holds the app, its wiring and the foundation's settings and error shape; the
# rest lives in packages by concern (observability/, serving/, api/, …).
MAX_DISPATCHER_ROOT_MODULES = 12
# The root of stacks/ holds its package face and the command shims; the shared contracts (the releases'
# memory and the store's ACL among them) live in stacks/shared/.
MAX_STACKS_ROOT_MODULES = 6
# A cloud is a package (stacks/aws/, stacks/gcp/), never a file-name prefix.
# Between the repository's top-level packages, lowest first: the settings catalogue and the channel
# contract both sides share, the bot host, the dispatcher and the SIP edge beside it, then the
# infrastructure that packages and deploys them.
TOP_LAYERS: list[tuple[str, ...]] = [
    ("voicefleet_settings", "botchannel"),
    ("bot", "examples"),
    ("dispatcher", "sipedge"),
    ("images", "stacks"),
    ("policy",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found[module_name(path)] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module an import names (`from a.b import c` may name module `a.b.c` or `a.b`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(source: str, name: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """The project modules that module `name`'s source imports, in any form and at any depth."""
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for imported in names:
            target = resolve(imported, known)
            if target is not None and target != name:
                targets.add(target)
    return targets


@cache
def imports() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(path.read_text(), name, path.name == "__init__.py", known)
            for name, path in known.items()}


def layer_of(module: str, layers: list[tuple[str, ...]]) -> int | None:
    """The layer of the longest entry that is `module` or a package holding it. A top-level
    package's own name (`dispatcher`) stands for its `__init__` only, so a new module must be placed."""
    best: tuple[int, int] | None = None
    for index, layer in enumerate(layers):
        for entry in layer:
            holds = module.startswith(entry + ".") and "." in entry
            if (module == entry or holds) and (best is None or len(entry) > best[1]):
                best = (index, len(entry))
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]], layers: list[tuple[str, ...]], top: bool = False) -> list[str]:
    found = []
    for source, targets in sorted(graph.items()):
        key = (lambda m: m.split(".")[0]) if top else (lambda m: m)
        low = layer_of(key(source), layers)
        for target in sorted(targets):
            high = layer_of(key(target), layers)
            if low is not None and high is not None and high > low:
                found.append(f"{source} imports {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# What puts an endpoint or a layer on an app: route and WebSocket decorators, the calls that add
# routes, routers or middleware, and the route classes themselves. All of it is in dispatcher/api/.
ROUTE_DECORATORS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "trace", "websocket",
                              "api_route", "route", "websocket_route", "middleware"})
ROUTE_CALLS = frozenset({"add_api_route", "add_api_websocket_route", "add_websocket_route", "add_route",
                         "add_middleware", "include_router", "mount", "host"})
ROUTE_CLASSES = frozenset({"APIRouter", "APIRoute", "APIWebSocketRoute", "Router", "Route", "WebSocketRoute",
                           "Mount", "Host"})
HTTP_PACKAGES = ("fastapi", "starlette")


def http_surface(source: str) -> list[str]:
    """Where `source` defines a route, a WebSocket endpoint or middleware, as `line: what`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr in ROUTE_DECORATORS:
                    found.append(f"{decorator.lineno}: @{ast.unparse(target)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ROUTE_CALLS:
            found.append(f"{node.lineno}: {ast.unparse(node.func)}()")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in HTTP_PACKAGES:
            found += [f"{node.lineno}: imports {alias.name}" for alias in node.names if alias.name in ROUTE_CLASSES]
        elif isinstance(node, ast.Attribute) and node.attr in ROUTE_CLASSES:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_every_dispatcher_module_has_a_layer() -> None:
    unplaced = [m for m in imports() if m.startswith("dispatcher") and layer_of(m, DISPATCHER_LAYERS) is None]
    assert unplaced == [], "place these in DISPATCHER_LAYERS (and dispatcher/__init__.py's picture)"


def test_no_dispatcher_module_imports_a_higher_layer() -> None:
    assert upward_imports(imports(), DISPATCHER_LAYERS) == []


def test_no_package_imports_a_higher_package() -> None:
    assert upward_imports(imports(), TOP_LAYERS, top=True) == []


def foreign_imports(graph: dict[str, set[str]], package: str) -> list[str]:
    """The imports of `package`'s modules that name another project package."""
    def inside(module: str) -> bool:
        return module == package or module.startswith(package + ".")

    return [f"{source} imports {target}" for source, targets in sorted(graph.items()) if inside(source)
            for target in sorted(targets) if not inside(target)]


def test_the_settings_catalogue_imports_nothing_of_voicefleets() -> None:
    # Both the bot host and the dispatcher read it: it is the standard library's alone.
    assert foreign_imports(imports(), "voicefleet_settings") == []


def test_the_sip_edge_imports_only_the_shared_contracts() -> None:
    # A process of its own beside the dispatcher: it speaks the dispatcher's HTTP API, as a carrier does,
    # and may share only what the bot host shares with it (the settings catalogue, the channel contract).
    shared = ("voicefleet_settings", "botchannel")
    assert [line for line in foreign_imports(imports(), "sipedge")
            if not line.split(" imports ")[1].startswith(shared)] == []


def test_every_stacks_module_has_a_layer() -> None:
    unplaced = [m for m in imports() if m.startswith("stacks") and layer_of(m, STACKS_LAYERS) is None]
    assert unplaced == [], "place these in STACKS_LAYERS (and docs/architecture.md's stacks/ section)"


def test_no_stacks_module_imports_a_higher_layer() -> None:
    assert upward_imports(imports(), STACKS_LAYERS) == []


def test_the_root_of_the_dispatcher_holds_at_most_a_dozen_modules() -> None:
    root = sorted(path.name for path in (ROOT / "dispatcher").glob("*.py"))
    assert len(root) <= MAX_DISPATCHER_ROOT_MODULES, f"{root}: move modules into a package by concern"


def test_the_root_of_stacks_holds_at_most_its_face_contracts_and_shims() -> None:
    root = sorted(path.name for path in (ROOT / "stacks").glob("*.py"))
    assert len(root) <= MAX_STACKS_ROOT_MODULES, f"{root}: move modules into config/, aws/, gcp/ or tools/"


def python_files() -> list[Path]:
    """Every Python file of the repository, outside hidden folders (virtualenvs, git) and node_modules."""
    return [path for path in ROOT.rglob("*.py")
            if not any(part.startswith(".") or part in ("node_modules", "__pycache__")
                       for part in path.relative_to(ROOT).parts)]


def cloud_prefixed(paths: list[Path]) -> list[str]:
    return sorted(path.relative_to(ROOT).as_posix() for path in paths if path.name.startswith(("aws_", "gcp_")))


def test_no_module_is_named_after_a_cloud_prefix() -> None:
    assert [name for name in cloud_prefixed(python_files())] == []


def test_no_import_cycles_anywhere() -> None:
    assert cycles(imports()) == []


def test_every_route_websocket_endpoint_and_middleware_is_in_dispatcher_api() -> None:
    outside = {name: where for name, path in sorted(modules().items())
               if name.startswith("dispatcher") and name != "dispatcher.api" and not name.startswith("dispatcher.api.")
               and (where := http_surface(path.read_text()))}
    assert outside == {}, "the dispatcher's HTTP surface lives in dispatcher/api/ (its routers: api/routers/)"


FOUNDATION = DISPATCHER_LAYERS[0]


def architecture_layers(page: str) -> dict[str, str]:
    """docs/architecture.md's layers picture: each layer's text by its package (`api`, `app`, ...)."""
    picture = page.split("## The dispatcher's layers", 1)[1].split("```", 2)[1]
    layers = re.split(r"\n(?=\s{0,2}\d+\s)", picture.strip("\n"))
    return {layer.split()[1].rstrip("/"): layer for layer in layers}


def unnamed_modules(layers: dict[str, str], names: list[str]) -> list[str]:
    """The dispatcher modules (`dispatcher.api.routers.ops`) whose layer's text does not name them."""
    missing = []
    for name in names:
        parts = name.split(".")
        top = ".".join(parts[:2])  # a root module, or the package a deeper one is in
        package = ("foundation" if top in FOUNDATION else "app" if top in DISPATCHER_LAYERS[-1]
                   else parts[1])
        if not re.search(rf"(?<![\w.]){re.escape(parts[-1])}\b", layers.get(package, "")):
            missing.append(name)
    return missing


def test_the_architecture_page_names_every_dispatcher_module_in_its_layer() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    names = [name for name, path in sorted(modules().items())
             if name.startswith("dispatcher.") and path.name != "__init__.py"]
    assert unnamed_modules(architecture_layers(page), names) == []


# The checks themselves, on small graphs: they must see what they are for.
def test_the_layer_check_sees_an_upward_import() -> None:
    graph = {"dispatcher.outbound.retry": {"dispatcher.machines.base"}, "dispatcher.machines.base": set()}
    assert upward_imports(graph, DISPATCHER_LAYERS) == ["dispatcher.outbound.retry imports dispatcher.machines.base"]
    assert upward_imports({"dispatcher.machines.base": {"dispatcher.outbound.retry"}}, DISPATCHER_LAYERS) == []


def test_the_stacks_layers_see_a_component_imported_by_config_and_a_stack_imported_by_a_component() -> None:
    graph = {"stacks.config.store": {"stacks.aws.store"}, "stacks.aws.relay": {"stacks.aws.stack"},
             "stacks.aws.stack": {"stacks.aws.relay", "stacks.config.model"},
             "stacks.tools.plan": {"stacks.gcp.stack", "stacks.config.settings"}}
    assert upward_imports(graph, STACKS_LAYERS) == ["stacks.aws.relay imports stacks.aws.stack",
                                                    "stacks.config.store imports stacks.aws.store"]
    assert layer_of("stacks.aws_store", STACKS_LAYERS) is None  # a prefixed module has no layer


def test_the_cloud_prefix_check_sees_a_prefixed_module_at_any_depth() -> None:
    paths = [ROOT / "stacks" / "aws_store.py", ROOT / "tests" / "infra" / "gcp_x.py",
             ROOT / "stacks" / "aws" / "store.py", ROOT / "tests" / "test_aws_signing.py"]
    assert cloud_prefixed(paths) == ["stacks/aws_store.py", "tests/infra/gcp_x.py"]


def test_a_new_top_level_module_has_no_layer_until_it_is_placed() -> None:
    assert layer_of("dispatcher.something_new", DISPATCHER_LAYERS) is None
    assert layer_of("dispatcher", DISPATCHER_LAYERS) == len(DISPATCHER_LAYERS) - 1
    routes = layer_of("dispatcher.api.routers.carriers", DISPATCHER_LAYERS)
    rules = layer_of("dispatcher.phone.calls", DISPATCHER_LAYERS)
    assert routes is not None and rules is not None and routes > rules  # phone/ never imports api/


def test_the_foreign_import_check_sees_the_catalogue_importing_the_channel_contract() -> None:
    graph = {"voicefleet_settings.read": {"voicefleet_settings.model", "botchannel.contract"}}
    assert foreign_imports(graph, "voicefleet_settings") == ["voicefleet_settings.read imports botchannel.contract"]


def test_the_cycle_check_sees_a_cycle_through_three_modules() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(("text", "expected"), [
    ("from dispatcher.media import turn", {"dispatcher.media", "dispatcher.media.turn"}),
    ("from . import rooms", {"dispatcher.media", "dispatcher.media.rooms"}),
    ("from ..machines.base import Machines", {"dispatcher.machines.base"}),
    ("import dispatcher.sessions.reaper as reaper", {"dispatcher.sessions.reaper"}),
    ("def f():\n    from dispatcher.api.routers.sessions import router", {"dispatcher.api.routers.sessions"}),
    ("if TYPE_CHECKING:\n    from dispatcher.sessions.service import SessionService", {"dispatcher.sessions.service"}),
])
def test_imports_are_read_in_every_form(text: str, expected: set[str]) -> None:
    assert imported_modules(text, "dispatcher.media.probe", False, modules()) == expected


@pytest.mark.parametrize("text", [
    "@router.websocket('/ws/{carrier}')\nasync def stream(websocket): ...",
    "@app.get('/healthz', tags=['ops'])\nasync def healthz(request): ...",
    "@router.post\nasync def start(request): ...",
    "app.include_router(router)",
    "app.add_middleware(JsonBodies)",
    "app.add_api_websocket_route('/bots/channel', bot_channel)",
    "app.mount('/static', StaticFiles(directory='static'))",
    "from fastapi import APIRouter",
    "from starlette.routing import WebSocketRoute",
    "import fastapi\nrouter = fastapi.APIRouter()",
])
def test_the_http_surface_check_sees_an_endpoint_in_every_form(text: str) -> None:
    assert http_surface(text) != []


def test_the_http_surface_check_lets_a_module_use_requests_and_sockets() -> None:
    text = "from fastapi import FastAPI, Request, WebSocket\nasync def f(websocket: WebSocket) -> None:\n" \
           "    await websocket.accept()\n    headers.get('host')\n"
    assert http_surface(text) == []


def test_the_architecture_check_sees_a_module_missing_from_its_layer() -> None:
    page = "## The dispatcher's layers\n\n```\n 2  api/  state · mount\n 1  foundation  settings.py\n```\n"
    layers = architecture_layers(page)
    names = ["dispatcher.api.state", "dispatcher.api.routers.ops", "dispatcher.settings", "dispatcher.wiring"]
    assert unnamed_modules(layers, names) == ["dispatcher.api.routers.ops", "dispatcher.wiring"]
