"""The import graph of ``pipeline/`` and the top-level scripts is layered and has no circle.

Every ``.py`` is parsed with ``ast`` (nothing is imported), and every import of a project
module becomes an edge, at module level or inside a function. Layers, lowest first; a
module may import its own layer or a lower one, never a higher one:

0. ``config``, ``errors``, ``java``, ``datagen``, ``costs``, ``class_archive`` (the job's
   class archive, made at install from ``java``, ``datagen`` and ``sales_etl``);
1. ``storage``, ``sql``, ``engines``, ``catalog``, ``charts``, ``aws``, ``infra/*``;
2. ``targets/*``: the only place that branches on the target;
3. ``runner``, ``report`` (the run's page, which the runner writes last);
4. ``cli``: the scripts' helper, imported by scripts only;
5. the top-level scripts.

Importing ``a.b.c`` from outside the package ``a.b`` runs ``a/b/__init__.py`` first, so
it is an edge to ``a.b`` as well. A function-local import of a project module is refused
too (it hides an edge from a reader and dodges a circle at import time), unless it is in
``LOCAL_IMPORTS_ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "pipeline"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("sales_etl", "pipeline", "pipeline.config", "pipeline.errors", "pipeline.java", "pipeline.datagen",
     "pipeline.costs", "pipeline.class_archive"),
    ("pipeline.storage", "pipeline.sql", "pipeline.engines", "pipeline.catalog",
     "pipeline.charts", "pipeline.aws", "pipeline.infra"),
    ("pipeline.targets",),
    ("pipeline.runner", "pipeline.report"),
    ("pipeline.cli",),
)  # fmt: skip
SCRIPTS_LAYER = len(LAYERS)

# (importer, imported) -> why the import has to run inside a function.
LOCAL_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("sales_etl.run", "pipeline.java"): "the job runs on Glue, where the pipeline package is "
    "absent: it finds Java through pipeline.java only when run locally (ImportError: skip)",
}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    local: bool  # inside a function (or class) body, not at module level


def modules_of(root: Path, package: str, scripts: Iterable[Path] = ()) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``root/package`` and each script."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    for path in scripts:
        found[path.stem] = path
    return found


def _imported_names(node: ast.Import | ast.ImportFrom, importer: str, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the importer's package
        package = importer.split(".") if is_pkg else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # `from a import b` imports a.b when b is a module, else the name b of a.
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _walk(tree: ast.AST) -> Iterable[tuple[ast.AST, bool]]:
    """Every node with whether it sits inside a function or class body."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, local = stack.pop()
        yield node, local
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of a module of ``modules`` by one of them, with its parent packages."""
    edges = set()
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node, local in _walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for imported in _imported_names(node, name, is_pkg):
                parts = imported.split(".")
                for i in range(1, len(parts) + 1):
                    target = ".".join(parts[:i])
                    # A package the importer is inside is already being imported.
                    inside = name == target or name.startswith(target + ".")
                    if target in modules and not inside:
                        edges.add(Edge(name, target, node.lineno, local))
    return sorted(edges, key=lambda e: (e.importer, e.line, e.imported))


def circles(edges: Iterable[Edge]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int:
    """The layer of ``module``: its own entry or its nearest package's; else a script."""
    best, best_len = SCRIPTS_LAYER if layers is LAYERS else len(layers), -1
    for number, members in enumerate(layers):
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > best_len:
                best, best_len = number, len(member)
    return best


def problems(
    modules: dict[str, Path],
    layers: tuple[tuple[str, ...], ...] = LAYERS,
    allowed: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """Every circle, upward import and unexplained function-local import, one line each."""
    allowed = LOCAL_IMPORTS_ALLOWED if allowed is None else allowed
    edges = import_edges(modules)
    found = [f"circle: {' <-> '.join(group)}" for group in circles(edges)]
    local: dict[tuple[str, int], str] = {}  # each local import by its deepest module
    for e in edges:
        if layer_of(e.importer, layers) < layer_of(e.imported, layers):
            found.append(f"upward: {e.importer}:{e.line} imports {e.imported}")
        if e.local and len(e.imported) > len(local.get((e.importer, e.line), "")):
            local[(e.importer, e.line)] = e.imported
    for (importer, line), imported in sorted(local.items()):
        if (importer, imported) not in allowed:
            found.append(f"local import: {importer}:{line} imports {imported}")
    return found


JOB_PACKAGE = "sales_etl"


def project_modules() -> dict[str, Path]:
    return modules_of(REPO, PACKAGE, sorted(REPO.glob("*.py"))) | modules_of(REPO, JOB_PACKAGE)


# --- the project ---------------------------------------------------------------------


def test_every_project_module_has_a_layer():
    unplaced = [
        name
        for name, path in project_modules().items()
        if path.parent != REPO and layer_of(name) == SCRIPTS_LAYER
    ]
    assert unplaced == []


def test_the_job_never_needs_the_pipeline_package():
    """Glue runs the entry script and the sales_etl zip without pipeline/."""
    edges = import_edges(project_modules())
    job = [e for e in edges if e.importer == "glue_etl_job" or e.importer.startswith("sales_etl")]
    needs = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in job
        if e.imported.startswith(PACKAGE)
        # importing pipeline.java runs pipeline/__init__.py too
        and not any(e.importer == a and b.startswith(e.imported) for a, b in LOCAL_IMPORTS_ALLOWED)
    ]
    assert needs == []
    assert any(e.imported.startswith("sales_etl") for e in job if e.importer == "glue_etl_job")


def test_pipeline_and_the_scripts_import_in_layers_without_circles():
    found = problems(project_modules())
    assert not found, "\n".join(found)


def test_the_cli_helper_is_imported_by_scripts_only():
    importers = {
        e.importer for e in import_edges(project_modules()) if e.imported == "pipeline.cli"
    }
    assert importers and all("." not in name for name in importers), importers


# --- the checker itself, on a tiny package -------------------------------------------


def _package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return modules_of(root, "pkg", sorted(root.glob("*.py")))


LAYERS_OF_PKG = (("pkg", "pkg.low"), ("pkg.mid",), ("pkg.high",))


def test_the_checker_finds_a_circle_even_through_a_function_local_import(tmp_path):
    modules = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def f():\n    from pkg import mid\n",
            "pkg/mid.py": "from pkg.low import f\n",
        },
    )
    assert problems(modules, LAYERS_OF_PKG, {}) == [
        "circle: pkg.low <-> pkg.mid",
        "upward: pkg.low:2 imports pkg.mid",
        "local import: pkg.low:2 imports pkg.mid",
    ]


def test_the_checker_finds_a_circle_through_a_package_init(tmp_path):
    # high imports mid.a, which runs mid/__init__.py, which imports high.
    modules = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mid/__init__.py": "from . import b\nfrom pkg import high\n",
            "pkg/mid/a.py": "X = 1\n",
            "pkg/mid/b.py": "from pkg.mid.a import X\n",
            "pkg/high.py": "from pkg.mid.a import X\n",
        },
    )
    assert problems(modules, (("pkg",), ("pkg.mid", "pkg.high")), {}) == [
        "circle: pkg.high <-> pkg.mid"
    ]


def test_the_checker_accepts_a_clean_package_and_allowed_local_imports(tmp_path):
    modules = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "import os\n",
            "pkg/mid.py": "import pkg.low\n",
            "pkg/high.py": "from .mid import low\ndef f():\n    from pkg import mid\n",
            "script.py": "from pkg.high import f\n",
        },
    )
    assert problems(modules, LAYERS_OF_PKG, {("pkg.high", "pkg.mid"): "a reason"}) == []
    assert problems(modules, LAYERS_OF_PKG, {}) == ["local import: pkg.high:3 imports pkg.mid"]
