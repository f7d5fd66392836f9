"""The import graph of tinlib: no cycles, and every package imports only the layers below it.

Every module under tinlib/ is parsed with ``ast`` (nothing is imported, so no torch either). An
import is any ``import`` / ``from ... import`` statement, at module level or inside a function
(absolute or relative), plus the two dynamic forms the package uses: a string naming a tinlib
module in a module that calls ``importlib.import_module`` (the command table of ``tinlib.cli``),
and a name a package exports lazily through its ``_EXPORTS`` table (``tinlib.data``), which
resolves to the submodule that defines it.

Layers, lowest first: the base modules (``tinlib.errors``, ``io``, ``records``, ...), ``ops``,
``models``, ``data``, ``engine``, then ``report`` / ``doctor`` / ``pipeline``, and ``commands``
(imported by ``tinlib.cli`` only).
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tinlib"

# subpackage -> the subpackages it must not import
FORBIDDEN = {
    "ops": {"models", "data", "engine", "pipeline", "report", "doctor", "commands"},
    "models": {"data", "engine", "pipeline", "report", "doctor", "commands"},
    "data": {"engine", "pipeline", "report", "doctor", "commands"},
    "engine": {"pipeline", "report", "doctor", "commands"},
    "report": {"pipeline", "doctor", "commands"},
    "doctor": {"pipeline", "report", "commands"},
}
SUBPACKAGES = {"ops", "models", "data", "engine", "pipeline", "report", "doctor", "commands", "configs"}
# the config files build on the config schema and on each other, nothing else
CONFIGS_ALLOWED = {"tinlib.engine", "tinlib.config"}
# report/ reads records and configs: of the engine only the pure pieces (the config schema, the
# metric definitions), never training, evaluation runs, process groups or latency runs
REPORT_ENGINE_ALLOWED = {"tinlib.engine", "tinlib.config", "tinlib.engine.metrics", "tinlib.engine.optim"}
# the entry points above the commands
COMMAND_IMPORTERS = {"tinlib.cli"}


@dataclass(frozen=True)
class Import:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: Path
    line: int
    by_name: bool = False  # a module name in a string, imported when the code runs (a dispatch table)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.source} imports {self.target}"


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def lazy_exports(package: str) -> dict[str, str]:
    """``{name: submodule}`` from a package's module-level ``_EXPORTS = {...}`` literal, if any."""
    tree = ast.parse(MODULES[package].read_text())
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and node.value is not None:
            return {name: f"{package}.{sub}" for name, sub in ast.literal_eval(node.value).items()}
    return {}


def nearest_module(name: str) -> str | None:
    """``name`` or its nearest enclosing module that exists (``tinlib.x.attr`` -> ``tinlib.x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(source: str) -> Iterator[Import]:
    """Every tinlib module ``source`` imports, with the line of the import."""
    path = MODULES[source]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = source if is_package(source) else source.rpartition(".")[0]
    uses_import_module = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = nearest_module(alias.name)
                if target:
                    yield Import(source, target, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if nearest_module(module) is None:
                continue  # not tinlib
            exports = lazy_exports(module) if module in MODULES and is_package(module) else {}
            for alias in node.names:
                target = (f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                          else exports.get(alias.name) or nearest_module(module))
                if target:
                    yield Import(source, target, path, node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            uses_import_module = True
    if uses_import_module:  # module names spelt out as strings, e.g. the command table
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
                yield Import(source, node.value, path, node.lineno, by_name=True)


IMPORTS = [imp for source in MODULES for imp in imports_of(source)]


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else None


def executed(imp: Import) -> list[str]:
    """The modules an import runs: the target and its enclosing packages, except those enclosing
    the importer (already running by then)."""
    enclosing_source = {imp.source.rsplit(".", i)[0] for i in range(imp.source.count(".") + 1)}
    parts = imp.target.split(".")
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [m for m in chain if m not in enclosing_source and m != imp.source]


def find_cycles(imports: list[Import]) -> list[list[Import]]:
    """One cycle (as the chain of imports) per strongly connected group of modules."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.by_name:
            continue  # see test_only_the_dispatch_tables_import_by_name
        for target in executed(imp):
            graph.setdefault(imp.source, {}).setdefault(target, imp)
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    cycles = []
    for group in groups:  # a shortest way round, from the group's first module back to it
        start = min(group)
        reached: dict[str, Import] = {}  # module -> the import that first reached it
        frontier, back = [start], None
        while frontier and back is None:
            following = []
            for node in frontier:
                for target, imp in sorted(graph[node].items()):
                    if target == start:
                        back = back or imp
                    elif target in group and target not in reached:
                        reached[target] = imp
                        following.append(target)
            frontier = following
        assert back is not None
        chain = [back]
        while chain[-1].source != start:
            chain.append(reached[chain[-1].source])
        cycles.append(chain[::-1])
    return cycles


def test_the_graph_sees_every_kind_of_import():
    """The parser finds what the rules depend on; else the other tests would pass on an empty graph."""
    found = {(imp.source, imp.target) for imp in IMPORTS}
    assert len(MODULES) > 60 and "tinlib.records" in MODULES and "tinlib.data" in MODULES
    assert ("tinlib.models.temporal", "tinlib.ops") in found                 # from tinlib import ops
    assert ("tinlib.ops", "tinlib.ops.dispatch") in found                    # from .dispatch import ...
    assert ("tinlib.engine.splits", "tinlib.data.datasets") in found          # lazy export, inside a function
    assert ("tinlib.cli", "tinlib.commands.train") in found                   # the command table
    assert ("tinlib.pipeline.launch", "tinlib.engine.train") in found         # inside a function


def test_find_cycles_reports_the_chain():
    """The cycle finder itself, on a made-up graph: a -> b -> c -> a and a separate d -> d' pair."""
    path = ROOT / "tinlib" / "x.py"
    edges = [Import("tinlib.a", "tinlib.b", path, 1), Import("tinlib.b", "tinlib.c", path, 2),
             Import("tinlib.c", "tinlib.a", path, 3), Import("tinlib.c", "tinlib.e", path, 4),
             Import("tinlib.d", "tinlib.f", path, 5), Import("tinlib.f", "tinlib.d", path, 6)]
    cycles = find_cycles(edges)
    assert sorted([imp.line for imp in chain] for chain in cycles) == [[1, 2, 3], [5, 6]]


def test_only_the_dispatch_tables_import_by_name():
    """The cycle check leaves out imports by name, which run when the code runs, once the importer
    is loaded: ``tinlib.cli``'s command table names the command modules and ``main`` imports the one
    asked for (the commands in turn use ``tinlib.cli.run_command``, the one main body);
    ``tinlib.config`` loads a config file from ``tinlib.configs`` (whose files build on the
    schema it defines); ``tinlib.hub`` reads the ``published`` section (URLs: data) of the same
    files, so that the published artifacts have one source. Those loops are the dispatch working,
    not import cycles; the exception holds for these three modules only."""
    by_name = {imp.source for imp in IMPORTS if imp.by_name}
    assert by_name == {"tinlib.cli", "tinlib.config", "tinlib.hub"}
    assert {imp.target for imp in IMPORTS if imp.by_name} >= {"tinlib.commands.train", "tinlib.configs"}


def test_no_import_cycles():
    cycles = find_cycles(IMPORTS)
    message = "\n\n".join("import cycle:\n  " + "\n  ".join(str(imp) for imp in chain) for chain in cycles)
    assert not cycles, message


def layer_violations(imports: list[Import]) -> Iterator[str]:
    for imp in imports:
        src, dst = subpackage(imp.source), subpackage(imp.target)
        if src == dst and src is not None:
            continue
        if dst in FORBIDDEN.get(src or "", ()):
            yield f"{imp}: {src}/ must not import {dst}/"
        if src == "configs" and dst != "configs" and imp.target not in CONFIGS_ALLOWED:
            yield f"{imp}: a config file may import only tinlib.config and other configs"
        if src is None and dst is not None and imp.source not in COMMAND_IMPORTERS | {"tinlib.__main__"} \
                and (imp.source, dst) not in {("tinlib.hub", "configs"), ("tinlib.config", "configs"),
                                            ("tinlib.config", "ops"), ("tinlib.config", "models")}:
            yield f"{imp}: the base modules (tinlib/*.py) must not import the subpackages"
        if dst == "commands" and src != "commands" and imp.source not in COMMAND_IMPORTERS:
            yield f"{imp}: only tinlib.cli imports tinlib.commands"
        if src == "report" and dst == "engine" and imp.target not in REPORT_ENGINE_ALLOWED:
            yield (f"{imp}: report/ may use only {sorted(REPORT_ENGINE_ALLOWED - {'tinlib.engine'})} of the "
                   "engine (no training, evaluation runs, process groups or latency runs)")


def test_layers_import_only_downwards():
    bad = sorted(set(layer_violations(IMPORTS)))
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("source,target,rule", [
    ("tinlib.ops.dispatch", "tinlib.models.temporal", "ops/ must not import models/"),
    ("tinlib.data.loader", "tinlib.engine.dist", "data/ must not import engine/"),
    ("tinlib.report.zoo", "tinlib.pipeline.launch", "report/ must not import pipeline/"),
    ("tinlib.report.plots", "tinlib.engine.train", "report/ may use only"),
    ("tinlib.pipeline.recipes", "tinlib.commands.train", "only tinlib.cli imports tinlib.commands"),
])
def test_a_forbidden_import_is_named_with_its_place(source, target, rule):
    bad = list(layer_violations([Import(source, target, MODULES[source], 7)]))
    assert len(bad) == 1 and rule in bad[0]
    assert bad[0].startswith(f"{MODULES[source].relative_to(ROOT)}:7: {source} imports {target}")
