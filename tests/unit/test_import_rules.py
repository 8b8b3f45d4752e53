"""The rooms' import rules, read from the code with :mod:`ast`: no import cycles among the
package's modules, each room importing only what its rule allows, and the light rooms loading
none of the heavy third-party stacks.

An edge is an import a module makes when it is loaded (at its top level, or in a class body);
one inside a function is lazy (made on first call, for a process that needs it) and must be
listed in ``LAZY``, so a new one is a decision, not an accident. Imports under
``if TYPE_CHECKING:`` load nothing, but they still couple two modules: they count for cycles,
not for the rooms' rules.

A room is a package directly under worker/, and its rule is its docstring's "May import:"
paragraph (module prefixes; anything else of worker is refused at load) and, for the rooms
other processes load, "Never imports:" (third-party stacks). Rooms stand in layers: no two
reach each other.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "worker"

# A room is a package directly under worker/; its docstring states what it may import (its
# rule, read below), so the rule is written once, where a reader of the room meets it. The
# modules directly under worker/ are the ground floor: registries, models, settings and errors
# that every room stands on; each counts as a room of its own for the cycle check.
RULE = re.compile(r"^May import: (.*?)\.\s*(?:\n\s*\n|\Z)", re.M | re.S)
HEAVY_RULE = re.compile(r"^Never imports: (.*?)\.\s*(?:\n\s*\n|\Z)", re.M | re.S)


def _rule(doc: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A docstring's rule: what of worker it may import, which third-party stacks it never
    imports; None when it states none. A parenthesis in the list is a reader's note."""
    allowed = RULE.search(doc)
    if not allowed:
        return None
    text = re.sub(r"\(.*?\)", "", " ".join(allowed.group(1).split()))
    may = () if text.startswith("nothing") else tuple(n.strip() for n in text.split(","))
    heavy = HEAVY_RULE.search(doc)
    never = tuple(n.strip() for n in " ".join(heavy.group(1).split()).split(",")) if heavy else ()
    return may, never


def _room_rules() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    rules = {}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        rule = _rule(ast.get_docstring(ast.parse(init.read_text())) or "")
        assert rule, f"{init}: its docstring says nothing of what the room may import"
        rules[f"worker.{init.parent.name}"] = rule
    return rules


# (importer, imported) made inside a function, outside the CLI (which loads what each command
# needs when it runs, so `runner --help` stays quick)
LAZY = {
    ("worker", "importlib"),  # the package's lazily loaded names (PEP 562)
    ("worker.pipeline.runtime", "worker.app"),  # the app that started the worker, at its start
    (
        "worker.pipeline.runtime",
        "worker.api.records",
    ),  # a worker subscribes the API's notice at start
}

# modules that must import without the heavy stacks (a backend reading the contract, a
# producer's settings and admission); the Python client itself sends with Celery
LIGHT = (
    "worker",
    "worker.contract",
    "worker.settings",
    "worker.producer.admission",
    "worker.pipeline.events",
    "worker.messages",
    "worker.pipeline.scoring",
    "worker.programs",
)
HEAVY = ("celery", "kombu", "docker")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    # `from worker import metrics` imports the module worker.metrics, not just the package
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> tuple[set[str], set[str], set[str]]:
    """What ``module`` imports when loaded, what its functions import (lazy), and what it
    imports for type checkers only."""
    eager: set[str] = set()
    lazy: set[str] = set()
    typing: set[str] = set()

    def walk(nodes: list[ast.stmt], into: set[str]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.body, typing)
                walk(node.orelse, into)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(node.body, lazy)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                into.update(_targets(node, module))
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        walk([child], into)
                    elif isinstance(child, ast.ExceptHandler):
                        walk(child.body, into)

    walk(ast.parse(MODULES[module].read_text()).body, eager)
    return eager, lazy, typing


IMPORTS = {module: _imports(module) for module in MODULES}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of ``graph`` (its modules in order, the first repeated last), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_package_has_no_import_cycles() -> None:
    graph = {m: {t for t in IMPORTS[m][0] | IMPORTS[m][2] if t in MODULES} for m in MODULES}
    cycle = _cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_lazy_imports_are_the_listed_ones() -> None:
    made = {
        (m, t)
        for m in MODULES
        if not _within(m, ("worker.cli",))
        for t in IMPORTS[m][1]
        if _within(t, ("worker",)) or t == "importlib"
    }
    assert made == LAZY


ROOMS = _room_rules()


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_imports_only_what_its_docstring_allows(room: str) -> None:
    may, never = ROOMS[room]
    broken = sorted(
        f"{module} imports {target}"
        for module in MODULES
        if _within(module, (room,))
        for target in IMPORTS[module][0]
        if (_within(target, ("worker",)) and not _within(target, (room, *may)))
        or _within(target, never)
    )
    assert broken == []


def test_rooms_have_no_import_cycles() -> None:
    """A room may reach another only one way: the rooms stand in layers, whatever their rules
    allow module by module (type-only imports count, as for modules)."""
    graph: dict[str, set[str]] = {_room(m): set() for m in MODULES if m != "worker"}
    for module in MODULES:
        if module == "worker":  # the package's face names what it re-exports from every room
            continue
        eager, _, typing = IMPORTS[module]
        graph[_room(module)] |= {_room(t) for t in eager | typing if t in MODULES} - {
            _room(module),
            "worker",
        }
    cycle = _cycle(graph)
    assert not cycle, "rooms import each other: " + " -> ".join(cycle)


def test_a_rule_is_read_from_a_docstring() -> None:
    doc = (
        "What it owns.\n\nMay import: worker.errors, worker.keyspace (to name\nkeys), worker.x.\n\n"
        "Never imports: celery,\nkombu.\n"
    )
    assert _rule(doc) == (("worker.errors", "worker.keyspace", "worker.x"), ("celery", "kombu"))
    assert _rule("May import: nothing of worker outside this package.") == ((), ())
    assert _rule("What it owns, and no rule.") is None


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_load_no_heavy_stack(module: str) -> None:
    loaded = "{m.split('.')[0] for m in sys.modules}"
    code = f"import sys, {module}\nprint(sorted({loaded} & {set(HEAVY)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import {module} loads {out.stdout.strip()}"
