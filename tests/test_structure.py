"""Rules of the code's shape, checked on the source so that they stay true.

* No import circles among the plugin packages' modules, counting imports inside functions
  (they hide a circle, they do not break it) and the packages a dotted import runs.
* Dependencies run one way: ``recommendations`` -> ``visualsearch`` -> ``lookalike``; no
  plugin module imports ``shop`` or ``config`` (``lookalike.contrib``, the integrations,
  may use both apps).
* No function runs over :data:`MAX_FUNCTION_LINES` lines of code (its docstring apart)
  and no module over :data:`MAX_MODULE_LINES` lines, unless its docstring says why ("...
  is long because ...").
* Every ``LOOKALIKE_*``, ``VISUALSEARCH_*`` or ``RECOMMENDATIONS_*`` name the plugins
  read is a property of their settings object, so the system check that reports unknown
  names never warns about one they use.

Tests, benches and migrations are exempt from the length rules.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("lookalike", "visualsearch", "recommendations")
#: The length rules also hold for the reference shop and the project.
MEASURED = (*PLUGINS, "shop", "config")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
WHY_LONG = re.compile(r"\bis long because\b")

#: What each plugin may import, besides itself and the standard and third-party libraries.
ALLOWED = {
    "lookalike": set(),
    "visualsearch": {"lookalike"},
    "recommendations": {"lookalike", "visualsearch"},
}
FIRST_PARTY = {*PLUGINS, "shop", "config"}


def _modules(*packages):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, _name(path)


def _name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path):
    return path.name == "__init__.py"


def _imports(path, name):
    """Every first-party module ``path`` imports, anywhere in it (``if TYPE_CHECKING``
    blocks apart): for ``from x import y``, ``x.y`` when that is a module, else ``x``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno
                yield module, node.lineno


def _graph():
    """``{module: {imported module: line}}`` over the plugin packages, with the packages a
    dotted import runs (``a.b.c`` runs ``a`` and ``a.b`` first) unless they enclose the
    importing module (they are already running)."""
    known = {name for _, name in _modules(*PLUGINS)}
    graph = {}
    for path, name in _modules(*PLUGINS):
        edges = graph.setdefault(name, {})
        enclosing = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for target, line in _imports(path, name):
            if target not in known:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix not in enclosing:
                    edges.setdefault(prefix, line)
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
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


def test_no_import_circles():
    graph = _graph()
    described = []
    for component in _cycles(graph):
        members = set(component)
        edges = [
            f"{source} -> {target} (line {line})"
            for source in component
            for target, line in graph[source].items()
            if target in members
        ]
        described.append("\n  ".join(edges))
    assert not described, "import circles:\n  " + "\n\n  ".join(described)


def test_dependencies_run_one_way():
    wrong = []
    for path, name in _modules(*PLUGINS):
        plugin = name.split(".")[0]
        if name.startswith("lookalike.contrib"):
            continue
        for target, line in _imports(path, name):
            top = (target or "").split(".")[0]
            if top in FIRST_PARTY and top != plugin and top not in ALLOWED[plugin]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def _measured():
    for path, _ in _modules(*MEASURED):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" not in relative:
            yield path, relative


def _code_lines(node):
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    docstring = node.body[0] if node.body else None
    if (
        isinstance(docstring, ast.Expr)
        and isinstance(docstring.value, ast.Constant)
        and isinstance(docstring.value.value, str)
    ):
        lines -= docstring.end_lineno - docstring.lineno + 1
    return lines


def test_functions_are_short_or_say_why():
    long = []
    for path, relative in _measured():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = _code_lines(node)
            if lines > MAX_FUNCTION_LINES and not WHY_LONG.search(ast.get_docstring(node) or ""):
                long.append(f"{relative}:{node.lineno} {node.name}() has {lines} lines of code")
    assert not long, "\n".join(long)


def test_modules_are_short_or_say_why():
    long = []
    for path, relative in _measured():
        text = path.read_text()
        lines = len(text.splitlines())
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_MODULE_LINES and not WHY_LONG.search(docstring):
            long.append(f"{relative} has {lines} lines")
    assert not long, "\n".join(long)


SETTING_NAME = re.compile(r"^(LOOKALIKE|VISUALSEARCH|RECOMMENDATIONS)_[A-Z0-9_]+$")


@pytest.fixture(scope="module")
def known_settings():
    from lookalike.checks import RENAMED
    from lookalike.conf import app_settings as lookalike_settings
    from recommendations.conf import app_settings as recommendations_settings
    from visualsearch.conf import app_settings as visualsearch_settings

    names = {*lookalike_settings.names(), *visualsearch_settings.names()}
    return names | set(recommendations_settings.names()) | set(RENAMED)


def test_every_setting_the_plugins_read_is_declared(known_settings):
    undeclared = []
    for path, name in _modules(*PLUGINS):
        if ".migrations." in name:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and SETTING_NAME.match(value):
                if value not in known_settings:
                    undeclared.append(f"{path.relative_to(ROOT)}:{node.lineno} {value}")
    assert not undeclared, (
        "read but not a property of the app's settings object (lookalike.conf.AppSettings):\n"
        + "\n".join(undeclared)
    )
