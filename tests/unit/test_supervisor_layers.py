"""The sandbox supervisor's C files stand in layers (the list at the top of
images/supervisor/supervisor.h): a file calls functions of, or uses variables defined in, files
of lower layers only, so the calls between its files form no cycle.

Read from the sources, without a compiler: the functions each file defines (and whether they
are static), the variables the header declares extern and where each is defined, and every name
each file refers to; a reference to what another file defines is an edge from the one to the
other. The finder itself is tested on a graph with a planted cycle, and on the sources with a
planted call upwards."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path

import pytest

SUPERVISOR = Path(__file__).resolve().parents[2] / "images" / "supervisor"
HEADER = "supervisor.h"
NOT_LINKED = {"hello.c"}  # built on its own (build.sh); not part of the supervisor

Graph = dict[str, dict[str, set[str]]]  # file -> file it refers to -> the names it uses there


# -- reading C ---------------------------------------------------------------------------------

_LITERAL_OR_COMMENT = re.compile(
    r"""/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""", re.S
)


def code_of(text: str) -> str:
    """C text without comments and with string and character literals emptied (line breaks
    kept), so that neither a name in a comment nor one in a string counts as a reference."""

    def blank(match: re.Match[str]) -> str:
        token = match.group()
        if token[0] in "\"'":
            return token[0] * 2
        return re.sub(r"[^\n]", " ", token)

    return _LITERAL_OR_COMMENT.sub(blank, text)


def _without_directives(code: str) -> str:
    return re.sub(r"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", "", code)


_TOKEN = re.compile(r"[{};()]|[A-Za-z_]\w*")
_PARAMETERS = re.compile(r"\s*\(")
_ATTRIBUTES = re.compile(r"\s*(?:__attribute__\s*\(\(.*?\)\)\s*)*")


def definitions(code: str) -> dict[str, bool]:
    """The functions the file defines: name -> whether it is static. A definition is a name
    followed, at the top level, by its parameters and then a body."""
    code = _without_directives(code)
    found: dict[str, bool] = {}
    depth = start = pos = 0  # start: where the top-level statement under way began
    while match := _TOKEN.search(code, pos):
        token, pos = match.group(), match.end()
        if token == "{":
            depth += 1
        elif token in "};":
            depth -= token == "}"
            if depth == 0:
                start = pos
        elif token in "()":
            pass
        elif depth == 0 and (parameters := _PARAMETERS.match(code, pos)):
            close = _matching_paren(code, parameters.end() - 1)
            after = _ATTRIBUTES.match(code, close + 1)
            if after and code.startswith("{", after.end()):
                found[token] = re.search(r"\bstatic\b", code[start : match.start()]) is not None
            pos = close + 1
    return found


def _matching_paren(code: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses")


def references(code: str) -> set[str]:
    """Every name the code uses but a struct member's (``.name``, ``->name``)."""
    return {m.group(2) for m in re.finditer(r"(\.|->)?\s*\b([A-Za-z_]\w*)", code) if not m.group(1)}


def header_sections(header: str) -> dict[str, str]:
    """The header's declarations under each ``/* FILE.c */`` line, by file."""
    parts = re.split(r"(?m)^/\* ([\w-]+\.c) \*/$", header)
    return {parts[i]: code_of(parts[i + 1]) for i in range(1, len(parts), 2)}


def declared_functions(section: str) -> set[str]:
    names = set()
    for statement in section.split(";"):
        statement = " ".join(statement.split())
        if not statement or statement.startswith(("extern ", "#")):
            continue
        if match := re.search(r"([A-Za-z_]\w*)\s*\(", statement):
            names.add(match.group(1))
    return names


def declared_variables(section: str) -> set[str]:
    return set(
        re.findall(r"(?m)^\s*extern\b[^;(]*?\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*;", section)
    )


def layers(header: str) -> dict[str, int]:
    """The layer list at the top of the header: ``*   N  FILE.c  what it is``."""
    top = header[: header.index("*/")]
    return {name: int(n) for n, name in re.findall(r"(?m)^\s*\*\s+(\d+)\s+([\w-]+\.c)\b", top)}


# -- the graph ---------------------------------------------------------------------------------


def sources(folder: Path) -> dict[str, str]:
    return {
        path.name: code_of(path.read_text())
        for path in sorted(folder.glob("*.c"))
        if path.name not in NOT_LINKED
    }


def graph_of(folder: Path) -> Graph:
    """Which file refers to which other's functions and extern variables, by name."""
    files = sources(folder)
    defined = {name: definitions(code) for name, code in files.items()}
    owner: dict[str, str] = {}
    for name, funcs in defined.items():
        for func, static in funcs.items():
            if not static:
                assert func not in owner, f"{func} is defined in {owner[func]} and {name}"
                owner[func] = name
    for variable in declared_variables(code_of((folder / HEADER).read_text())):
        where = [name for name, code in files.items() if _defines_variable(code, variable)]
        assert len(where) == 1, f"extern {variable}: defined in {where or 'no file'}"
        owner[variable] = where[0]
    graph: Graph = {name: {} for name in files}
    for name, code in files.items():
        for used in references(code) - set(defined[name]):
            other = owner.get(used)
            if other and other != name:
                graph[name].setdefault(other, set()).add(used)
    return graph


def _defines_variable(code: str, variable: str) -> bool:
    """Whether a top-level statement of the code, not an extern one, declares the variable."""
    out, depth = [], 0
    for ch in _without_directives(code):  # what is outside every brace, but the braces
        depth -= ch == "}"
        if depth == 0:
            out.append(ch)
        depth += ch == "{"
    for statement in "".join(out).split(";"):
        statement = statement.rsplit("}", 1)[-1]  # after a function's body
        if (
            re.search(rf"\b{variable}\b", statement)
            and not re.match(r"\s*extern\b", statement)
            and "(" not in statement
        ):
            return True
    return False


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of the directed graph as the path that closes it (``[a, b, a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def on_cycles(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node that is on some cycle: one a node it leads to leads back to."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return sorted(node for node in edges if node in reach(node))


def describe(cycle: list[str], graph: Graph) -> str:
    steps = [f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})" for a, b in pairwise(cycle)]
    return " ; ".join(steps)


def upward_calls(graph: Graph, layer: Mapping[str, int]) -> list[str]:
    return [
        f"{a} (layer {layer[a]}) uses {b} (layer {layer[b]}): {', '.join(sorted(names))}"
        for a, targets in sorted(graph.items())
        for b, names in sorted(targets.items())
        if layer[b] >= layer[a]
    ]


# -- the supervisor as it is -------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return graph_of(SUPERVISOR)


@pytest.fixture(scope="module")
def header() -> str:
    return (SUPERVISOR / HEADER).read_text()


def test_the_calls_between_the_supervisors_files_form_no_cycle(graph: Graph) -> None:
    edges = {a: set(targets) for a, targets in graph.items()}
    cycle = find_cycle(edges)
    assert cycle is None, (
        f"call cycle between files: {' -> '.join(cycle)}: {describe(cycle, graph)} "
        f"(all the files on a cycle: {', '.join(on_cycles(edges))})"
    )


def test_each_file_uses_only_files_of_lower_layers(graph: Graph, header: str) -> None:
    layer = layers(header)
    assert set(layer) == set(graph), (
        f"supervisor.h's layer list names {sorted(layer)}, the sources are {sorted(graph)}"
    )
    assert upward_calls(graph, layer) == []


def test_the_header_declares_each_files_functions_under_its_name(header: str) -> None:
    """What a reader sees of a file in the header is what it defines, so the layers read off
    the header are the code's."""
    files = sources(SUPERVISOR)
    sections = header_sections(header)
    assert set(sections) <= set(files)
    for name, code in files.items():
        exported = {f for f, static in definitions(code).items() if not static} - {"main"}
        declared = declared_functions(sections.get(name, ""))
        assert declared == exported, (
            f"{name}: declared but not defined there: {sorted(declared - exported)}; "
            f"defined but not declared: {sorted(exported - declared)}"
        )


def test_the_reader_sees_the_calls_it_must(graph: Graph) -> None:
    """Not vacuous: calls and an extern variable count (a function used as a value: below)."""
    assert {"reap", "scan_uid"} <= graph["run.c"]["process.c"]
    assert "spawn_exec" in graph["park.c"]["spawn.c"]
    assert "server_lost_job" in graph["supervisor.c"]["server.c"]
    assert "cell_enter" in graph["spawn.c"]["cell.c"]
    assert graph["wire.c"] == {}
    # a static function of the same name in two files is neither's export
    used = {n for targets in graph.values() for names in targets.values() for n in names}
    assert "close_fd" not in used


# -- the finder, on planted cycles --------------------------------------------------------------


def test_the_cycle_finder_names_a_planted_cycle() -> None:
    planted = {"a.c": {"b.c"}, "b.c": {"c.c"}, "c.c": {"a.c"}, "d.c": {"a.c"}, "e.c": set()}
    assert find_cycle(planted) == ["a.c", "b.c", "c.c", "a.c"]
    assert find_cycle({"a.c": set(), "x.c": {"y.c"}, "y.c": {"x.c"}}) == ["x.c", "y.c", "x.c"]
    assert find_cycle({"a.c": {"a.c"}}) == ["a.c", "a.c"]
    assert on_cycles(planted) == ["a.c", "b.c", "c.c"]
    # two ways down to the same file are no cycle
    assert find_cycle({"a.c": {"b.c", "d.c"}, "b.c": {"d.c"}, "d.c": set()}) is None
    assert on_cycles({"a.c": {"b.c", "d.c"}, "b.c": {"d.c"}, "d.c": set()}) == []


def test_a_planted_call_upwards_is_found_and_named(tmp_path: Path) -> None:
    copy = tmp_path / "supervisor"
    shutil.copytree(SUPERVISOR, copy)
    with (copy / "wire.c").open("a") as wire:
        wire.write(
            '\n/* run_jobs() in a comment is no call */\nstatic const char *s = "run_jobs()";\n'
            "void planted(job_t *job) { run_jobs(NULL, NULL, job->reap); }\n"
        )
    with (copy / "pair.c").open("a") as pair:  # a function taken as a value counts too
        pair.write("\nstatic long (*const planted_hook)(void) = oom_kills;\n")
    graph = graph_of(copy)
    assert graph["wire.c"] == {"run.c": {"run_jobs"}}  # not process.c's reap: a member
    assert graph["pair.c"] == {"process.c": {"oom_kills"}}
    cycle = find_cycle({a: set(targets) for a, targets in graph.items()})
    assert cycle is not None and cycle[0] == cycle[-1] and "wire.c" in cycle and "run.c" in cycle
    assert "wire.c -> run.c (run_jobs)" in describe(cycle, graph)
    assert upward_calls(graph, layers((copy / HEADER).read_text())) == [
        "pair.c (layer 0) uses process.c (layer 4): oom_kills",
        "wire.c (layer 0) uses run.c (layer 6): run_jobs",
    ]
