"""The package's shape: imports point one way (no cycles, no layer importing one above it), and
nothing imports the standalone entry."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "intranet"


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _source(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` in module *name* reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports(name: str, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The modules of the package that *name* imports when it is itself imported.

    Module-level statements only (imports inside functions run later, and ``if TYPE_CHECKING``
    never runs); ``from intranet import posts`` counts as importing ``intranet.posts``.
    """
    path, is_package = modules[name]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                source = _source(name, is_package, node)
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        found.add(f"{source}.{alias.name}")
                    elif source in modules:
                        found.add(source)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    found.discard(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    """The finder itself: a -> b -> c -> a is one cycle, d alone is none."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_inside_the_package():
    """No group of intranet/ modules imports itself round in a circle at import time."""
    modules = _modules()
    graph = {name: module_imports(name, modules) for name in modules}
    assert import_cycles(graph) == []


def test_the_cli_does_not_import_the_extension():
    """The extension adds the CLI's commands; the CLI never imports the extension, not even lazily."""
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                named = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            else:
                continue
            # `from intranet import Intranet` reaches the extension through the package too.
            assert not {"intranet.extension", "intranet.Intranet", "intranet.create_app"} & set(named), (
                path.name, node.lineno)


def test_nothing_imports_the_standalone_entry():
    """The package works inside a host app: no module imports app.py or the factory."""
    modules = _modules()
    for name in modules:
        if name not in ("intranet", "intranet.factory"):
            assert {"intranet.factory", "app"}.isdisjoint(module_imports(name, modules)), name


# ------------------------------------------------------------------------------------------------
# Layers: core <- services <- edges
# ------------------------------------------------------------------------------------------------

#: The edges: the only modules that import Flask, and the only ones that may import web/ or cli/.
EDGES = ("intranet", "intranet.extension", "intranet.factory", "intranet.jobs")
# intranet.languages imports nothing of Beacon's (catalogs and phrases, no Flask): errors carry phrases.
CORE = ("intranet.models", "intranet.db", "intranet.settings", "intranet.errors", "intranet.sanitize",
        "intranet.stemming", "intranet.languages")
WEB_FRAMEWORK = ("flask", "flask_wtf", "flask_babel", "werkzeug")


def _is_edge(name: str) -> bool:
    return name in EDGES or name.startswith(("intranet.web.", "intranet.cli.")) or name in (
        "intranet.web", "intranet.cli")


def every_import(name: str, modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """Every module *name* names in an import, anywhere in it (inside functions too), fully qualified:
    ``from a import b`` names ``a`` and ``a.b``."""
    path, is_package = modules[name]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _source(name, is_package, node)
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def _under(imported: str, roots: tuple[str, ...]) -> bool:
    return any(imported == root or imported.startswith(root + ".") for root in roots)


def layer_violations(imports: dict[str, set[str]]) -> list[str]:
    """What breaks the layering, as ``"importer -> imported"`` lines (see ``STYLE.md``)."""
    problems = []
    for name, imported in sorted(imports.items()):
        for target in sorted(imported):
            if not _is_edge(name) and _under(target, WEB_FRAMEWORK):
                problems.append(f"{name} -> {target}: only the edges import the web framework")
            elif not _is_edge(name) and _under(target, ("intranet.web", "intranet.cli")):
                problems.append(f"{name} -> {target}: services never import the web or CLI edge")
            elif name in CORE and _under(target, ("intranet",)) and target != "intranet" and not _under(target, CORE):
                problems.append(f"{name} -> {target}: core modules import nothing above them")
    return problems


def test_the_layer_check_finds_each_kind_of_violation():
    """The checker itself: a service importing Flask or the web edge, and core importing a service."""
    assert layer_violations({
        "intranet.posts": {"flask", "intranet.web.context", "intranet.models"},
        "intranet.models": {"intranet.db", "intranet.targeting"},
        "intranet.web.feed": {"flask", "intranet.posts"},
    }) == [
        "intranet.models -> intranet.targeting: core modules import nothing above them",
        "intranet.posts -> flask: only the edges import the web framework",
        "intranet.posts -> intranet.web.context: services never import the web or CLI edge",
    ]


def test_imports_point_down_the_layers():
    """Only the edges import Flask, web/ or cli/; core modules import only each other (even lazily)."""
    modules = _modules()
    assert layer_violations({name: every_import(name, modules) for name in modules}) == []


def test_the_standalone_entry_imports_only_what_exists():
    """Every import in app.py (``python app.py`` serves from inside ``__main__``) names a real module and name."""
    import importlib

    for node in ast.walk(ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"app.py line {node.lineno}: {node.module}.{alias.name}"


def test_settings_are_read_from_the_typed_object():
    """No module reads an ``INTRANET_*`` key from a config mapping: they read ``state.settings``, parsed
    once at ``init_app`` (settings.py parses the keys; graph.py builds its client settings from them)."""
    import re

    reads = re.compile(r"""config(\[|\.get\()["']INTRANET_""")
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in ("settings.py", "directory/graph.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not reads.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


def test_tests_use_public_names_and_shared_support_only():
    """No test module imports another test module, or uses a private name of the package (tests read
    like the specification: through fixtures, support modules and public functions)."""
    modules = _modules()
    offences = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        package_names = set()   # local names bound to Beacon's modules, e.g. `preferences`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("tests.test_"):
                    offences.append(f"{path.name}: from {node.module} import ...")
                if node.module.startswith("intranet"):
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            offences.append(f"{path.name}: {node.module}.{alias.name}")
                        if f"{node.module}.{alias.name}" in modules:
                            package_names.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                offences += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("tests.test_")]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in package_names and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                offences.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert offences == []
