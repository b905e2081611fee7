"""The dependency rule of ARCHITECTURE.md, checked on the code: each folder of a1lib imports only from
its own folder and the floors below it; nothing below the workflows floor imports argparse, the CLI
or params.yaml; only the CLI imports lazily (everything else imports at the top, so the imports are
the dependency graph)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "a1lib"

# Floors, lowest first. A module may import from its own floor and the floors below.
FLOORS = [
    {"constants", "io", "configs", "policy_protocol", "shipped", "progress"},  # shared, import nothing of a1lib above
    {"sim"},
    {"data"},
    {"models"},
    {"train"},
    {"eval"},
    {"robot", "serve"},
    {"viz"},
    {"workflows"},
]
FLOOR = {name: i for i, names in enumerate(FLOORS) for name in names}


def unit(module: str) -> str:
    """a1lib.sim.world -> "sim"; a1lib.io -> "io"."""
    return module.split(".")[1]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield name, path, ast.parse(path.read_text())


def imports(tree: ast.AST):
    """(imported module, line, at module level?) for every import statement."""
    top = {id(n) for n in tree.body}
    for n in tree.body:  # `if TYPE_CHECKING:` imports are for annotations only: they count as top level
        if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING":
            top |= {id(m) for m in n.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "a1lib" else [node.module]
            for n in names:
                yield n, node.lineno, id(node) in top


def test_every_module_is_on_a_floor():
    units = {unit(name) for name, _, _ in modules() if name != "a1lib"}
    assert units <= set(FLOOR), f"folders/modules not placed on a floor: {sorted(units - set(FLOOR))}"


def test_imports_go_down_the_floors_only():
    wrong = []
    for name, path, tree in modules():
        if name == "a1lib":
            continue
        own = FLOOR[unit(name)]
        for target, line, _ in imports(tree):
            if target.startswith("a1lib.") and FLOOR[unit(target)] > own:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "imports that go up a floor:\n" + "\n".join(wrong)


def test_no_commands_or_params_below_the_workflows_floor():
    wrong = []
    for name, path, tree in modules():
        if name.startswith("a1lib.workflows"):
            continue
        for target, line, _ in imports(tree):
            if target == "argparse" or target.startswith("a1lib.workflows"):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
        if "read_params(" in path.read_text() or "load_section(" in path.read_text():
            wrong.append(f"{path.relative_to(PACKAGE.parent)} reads params.yaml")
    assert not wrong, "\n".join(wrong)


def test_only_the_cli_imports_lazily():
    lazy = [f"{path.relative_to(PACKAGE.parent)}:{line} {target}"
            for name, path, tree in modules() if name != "a1lib.workflows.cli"
            for target, line, at_top in imports(tree) if not at_top and target.startswith("a1lib")]
    assert not lazy, "imports of a1lib inside functions (move them to the top):\n" + "\n".join(lazy)
