"""The package's layout rules, checked on its source: one-way imports, extension
knowledge in one place, read-only commands without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from resnetbench.backends import BACKENDS
from resnetbench.compress import COMPRESSIONS, DEFAULT_COMPRESSION

PACKAGE = Path(__file__).resolve().parent.parent / "resnetbench"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (not imported at run time)."""
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> package modules it imports at run time, module level or inside functions."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                if target.startswith("resnetbench"):
                    found = resolve(target)
                    if found and found != mod:
                        graph[mod].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_circles() -> None:
    graph = import_graph()
    assert len(graph) > 30 and graph["resnetbench.build"], "the graph finder found no modules or imports"
    assert cycles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed to resnetbench's packages and top-level modules: a circle here
    (config -> backends -> matrix -> config) is one no module-level check sees."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        out.setdefault(package(module), set()).update(package(t) for t in targets if package(t) != package(module))
    return out


def test_no_package_level_circles() -> None:
    packages = package_graph(import_graph())
    assert {"resnetbench.backends", "resnetbench.compress", "resnetbench.config"} <= set(packages)
    assert cycles(packages) == []


def test_the_package_circle_finder_finds_one_modules_do_not_show() -> None:
    # no circle between modules, one between their packages: backends.base -> matrix -> backends (the registry)
    modules = {"resnetbench.backends.base": {"resnetbench.matrix"}, "resnetbench.matrix": {"resnetbench.backends"},
               "resnetbench.backends": set()}
    assert cycles(modules) == []
    assert cycles(package_graph(modules)) == [["resnetbench.backends", "resnetbench.matrix"]]


def test_the_layer_contract_holds() -> None:
    """import-linter's layers contract (pyproject.toml, docs/architecture.md)."""
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed: pip install -e '.[lint]'")
    done = subprocess.run([str(lint)], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


# Modules allowed to name concrete backends or methods, and why. The tools reproduce
# specific measurements (hand-written loops per library, the gate's calibration runs,
# the mutation catalogue's fixed matrix); claims.py checks the guide's statements about
# named toolchains (C2: ONNX Runtime's static QDQ int8 artifact).
NAMING_ALLOWED = ("resnetbench.tools", "resnetbench.claims")


def _named_extensions(path: Path, names: set[str], kinds: tuple[str, ...]) -> list[str]:
    """String constants that name an extension where code decides on it: compared with a
    ``.backend``/``.compression`` value, a dict's ``"backend"``/``"compression"`` entry, a
    ``Case(...)`` argument, or any string equal to a distinctive name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hits: list[str] = []

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [v for elt in node.elts for v in strings(elt)]
        return []

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(any(k in ast.unparse(s) for k in kinds) for s in sides):
                hits += [f"{path.name}:{node.lineno}: {v}" for s in sides for v in strings(s) if v in names]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in kinds and value is not None:
                    hits += [f"{path.name}:{node.lineno}: {v}" for v in strings(value) if v in names]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Case"):
            hits += [f"{path.name}:{node.lineno}: {v}" for a in node.args for v in strings(a) if v in names]
    return hits


def _outside(subpackage: str) -> list[tuple[str, Path]]:
    return [(m, p) for m, p in _modules().items()
            if not m.startswith(subpackage) and not m.startswith(NAMING_ALLOWED)]


def test_no_module_outside_backends_names_a_backend() -> None:
    names = set(BACKENDS.names())
    hits = [h for _, p in _outside("resnetbench.backends") for h in _named_extensions(p, names, ("backend",))]
    assert hits == []


def test_no_module_outside_compress_names_a_compression_method() -> None:
    names = set(COMPRESSIONS.names()) - {DEFAULT_COMPRESSION}  # "none" is imported as DEFAULT_COMPRESSION
    hits = [h for _, p in _outside("resnetbench.compress") for h in _named_extensions(p, names, ("compression",))]
    assert hits == []


def test_the_name_finder_finds_names(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text('if case.backend in ("tensorrt", "x"):\n    pass\nd = {"compression": "static"}\nc = Case("a", "b", "dynamic")\n')
    assert _named_extensions(src, {"tensorrt"}, ("backend",)) == ["m.py:1: tensorrt"]
    assert _named_extensions(src, {"static", "dynamic"}, ("compression",)) == ["m.py:3: static", "m.py:4: dynamic"]


READ_ONLY = {
    "compare": ["compare", "{example}", "{example}"],
    "report": ["report", "{example}", "-o", "{tmp}/r.html", "--summary", "{tmp}/s.md"],
    "merge": ["merge", "{example}", "-o", "{tmp}/m.json"],
    "validate": ["validate", "{matrix}", "--list"],
    "shard": ["shard", "{matrix}", "--shard", "2/3", "--format", "k"],
    "schema-results": ["schema", "--results"],
    "decide": ["decide", "{example}", "--scenario", "edge"],
}
# Not here: `resnetbench schema` spells out each backend's declared settings (backend_settings:),
# which live on the backend classes, so it imports the built-in backends and torch (~2 s).
# `validate` imports a backend only for a matrix that gives it settings.


# Only the gate runs statistics (its rank test): only compare may import scipy.
STATISTICS = {"compare"}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_read_only_commands_import_no_torch(command: str, tmp_path: Path) -> None:
    root = PACKAGE.parent
    args = [a.format(example=root / "tests" / "data" / "results_example.json", tmp=tmp_path,
                     matrix=root / "matrix.yaml") for a in READ_ONLY[command]]
    heavy = ("torch", "torchvision", "onnxruntime", "openvino", *(() if command in STATISTICS else ("scipy",)))
    probe = ("import sys, runpy\n"
             f"HEAVY = {heavy!r}\n"
             f"sys.argv = ['resnetbench', *{args!r}]\n"
             "from resnetbench.cli import main\n"
             "code = main()\n"
             "heavy = sorted(m for m in HEAVY if m in sys.modules)\n"
             "print('HEAVY', heavy, file=sys.stderr)\n"
             "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    # the example has a failed case (compare: red) and no p99 (decide: no pick)
    assert done.returncode == (1 if command in ("compare", "decide") else 0), done.stderr[-2000:]
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]
