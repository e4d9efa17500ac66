"""The package's layers, as docs/ARCHITECTURE.md draws them: no module reaches back up the chain,
and no two modules import each other (directly or round a loop)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fakeseg"

#: bottom to top; a module may import its own layer and the layers below it, never above
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "registry", "faults", "progress", "numbers"}),
    frozenset({"io", "config", "device", "viz"}),
    frozenset({"data"}),
    frozenset({"features"}),
    frozenset({"spectral"}),
    frozenset({"models"}),
    frozenset({"inference"}),
    frozenset({"evaluation"}),
    frozenset({"training"}),
    frozenset({"detection"}),
    frozenset({"enhance"}),
    frozenset({"reporting"}),
    frozenset({"workflows"}),
    frozenset({"api"}),
    frozenset({"cli", "__main__"}),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every fakeseg module → the fakeseg modules it imports (top level or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "fakeseg":
                    targets.update(f"fakeseg.{a.name}" for a in node.names
                                   if a.name != "__version__")
                elif node.module.startswith("fakeseg."):  # a submodule, or names from one
                    targets.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("fakeseg."))
        found[name] = targets
    return found


def layer_of(module: str) -> int:
    group = module.split(".")[1] if "." in module else "api"
    for index, layer in enumerate(LAYERS):
        if group in layer:
            return index
    raise AssertionError(f"{module}: its group '{group}' has no layer in LAYERS; add it here "
                         "and to docs/ARCHITECTURE.md")


def test_no_module_reaches_up_the_chain() -> None:
    upward = sorted(f"{source} -> {target}" for source, targets in imports().items()
                    for target in targets
                    if source != "fakeseg" and layer_of(target) > layer_of(source))
    assert upward == []


def test_no_import_cycles() -> None:
    graph = imports()
    modules = set(graph)

    def resolve(target: str) -> str | None:
        while target and target not in modules:  # `from fakeseg.x import name` of a function
            target = target.rpartition(".")[0]
        return target or None

    edges = {m: {t for t in map(resolve, graph[m]) if t and t != m} for m in graph}
    edges["fakeseg"] = set()  # the public API imports lazily, on first use of a verb
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_architecture_doc_names_every_layer() -> None:
    doc = (PACKAGE.parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    for layer in LAYERS:
        for group in layer - {"api", "__main__", "errors", "faults"}:
            assert f"{group}" in doc, group
