"""The package's shape, as docs/architecture.md states it: no import cycle, each module imports only
modules at its own stage of the data's path or before it, and no module is much over 400 lines.

Imports are read from the source: every `import` anywhere in a module, function-level ones and
type-only ones (under `if TYPE_CHECKING:`) included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imagenette_build

PACKAGE = Path(imagenette_build.__file__).parent
MAX_LINES = 420  # "about 400"

# The data's path, stage by stage (docs/architecture.md). A module may import modules of its own
# stage or of an earlier one; a stage's prefix ("sources.") covers its subpackage.
STAGES = [
    # leaves: no module of the package
    ["errors", "limits", "procs", "progress", "readfile", "safepath", "settings", "declare", "shipped", "_version",
     "_resample_jit"],
    # facts and the utilities every stage uses
    ["classes", "resample", "toolchain", "safewrite", "sums", "members", "published"],
    ["filelist", "manifest_tables", "manifest", "newdataset"],
    ["sources."],
    ["plan", "labels", "noisy", "prefetch", "leakage", "provenance"],
    ["transform", "cache", "duplicates", "sheet"],
    ["worker", "engine"],
    ["tarwriter.", "formats."],
    ["options", "commit", "card", "croissant", "describe", "imagepass", "builder"],
    ["archive_bytes", "archive_reader", "verifier.", "extractor", "contactsheet", "comparison"],
    ["samplelayouts", "samplegen"],
    ["api", "cli_design", "cli", ""],  # "": the package's __init__
]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth: function-level ones and those under
    `if TYPE_CHECKING:` too (a loop of type-only imports is a loop all the same: the two modules
    cannot be understood, or split, apart)."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [f"{target}.{a.name}".strip(".") for a in node.names]
                deps |= {c if c in mods else target for c in candidates}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imagenette_build"):
                deps.add(node.module.removeprefix("imagenette_build").strip("."))
            elif isinstance(node, ast.Import):
                deps |= {a.name.removeprefix("imagenette_build").strip(".") for a in node.names
                         if a.name.startswith("imagenette_build")}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def stage_of(module: str) -> int:
    for i, stage in enumerate(STAGES):
        for entry in stage:
            if module == entry or (entry.endswith(".") and module.startswith(entry)) or \
                    (entry.endswith(".") and module == entry[:-1]):
                return i
    raise AssertionError(f"{module} is in no stage of STAGES: add it where it belongs on the data's path")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_module_imports_only_its_stage_or_earlier():
    late = [f"{m} (stage {stage_of(m)}) imports {d} (stage {stage_of(d)})"
            for m, deps in import_graph().items() for d in sorted(deps) if stage_of(d) > stage_of(m)]
    assert late == []


def test_cache_and_transform_import_nothing_of_the_pipeline():
    graph = import_graph()
    # pure: no files, no processes, no cache (limits holds only the bounds it shares with verify)
    assert graph["transform"] <= {"resample", "toolchain", "limits"}
    assert graph["cache"] <= {"errors", "procs", "readfile", "safewrite"}  # the fingerprint is given to it


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_much_over_400_lines(module):
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines; split it along its seams"


def test_the_graph_sees_relative_and_function_level_imports():
    """The checks above mean something only if the reader sees every kind of import."""
    graph = import_graph()
    assert "toolchain" in graph["transform"]  # `from .toolchain import ...` at the top
    assert "resample" in graph["toolchain"]  # `from .resample import engine` inside a function
    assert "tarwriter.tarformat" in graph["formats.webdataset"]  # `from ..tarwriter.tarformat import ...`
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .manifest import Manifest\n")
    assert [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)] == ["typing", "manifest"]
