"""One keyspace: no module but worker.keyspace spells a Redis key prefix or runs Lua of its own;
every script loads and runs; every key has its roles; the docs' table is the data's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fakeredis
import pytest

from worker import keyspace
from worker.keyspace import roles

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
# a key prefix as a string constant ("runner: " followed by a space is a message, not a key)
PREFIX = re.compile(r"(?<![\w-])(runner:[a-z]|_runner\.|celery-task-meta-)")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _offences(path: Path) -> list[int]:
    """The lines of ``path`` with a key prefix or Lua in a string constant (not a docstring)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docstrings:
            continue
        if "redis.call(" in node.value or PREFIX.search(node.value):
            found.append(node.lineno)
    return found


def test_no_module_but_the_keyspace_spells_a_key_prefix_or_holds_lua() -> None:
    modules = [p for p in WORKER.rglob("*.py") if "keyspace" not in p.relative_to(WORKER).parts]
    assert modules
    offences = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(modules) for line in _offences(p)]
    assert offences == [], "name keys and scripts in worker/keyspace:\n" + "\n".join(offences)


def test_the_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""runner:data: in a docstring is fine."""\n'
        'A = "runner:data:"\n'
        'B = f"_runner.consumer.{1}"\n'
        "C = \"return redis.call('GET', KEYS[1])\"\n"
        'D = "runner: a message"\n'
    )
    assert sorted(_offences(sample)) == [2, 3, 4]


@pytest.mark.parametrize("script", keyspace.SCRIPTS, ids=lambda s: "+".join(s.files))
def test_each_script_loads_and_registers(script: keyspace.Lua) -> None:
    client = fakeredis.FakeRedis()
    assert "redis.call" in script.source
    registered = client.register_script(script.source)
    assert client.script_exists(registered.sha) == [False]
    client.script_load(script.source)  # compiles: a syntax error would raise here
    assert client.script_exists(registered.sha) == [True]


def test_a_script_runs_by_its_digest() -> None:
    client = fakeredis.FakeRedis()
    keyspace.RUN_LOWER_HINTS(client, [keyspace.hints_key("r")], ["*", 3, 60])
    keyspace.RUN_LOWER_HINTS(client, [keyspace.hints_key("r")], ["*", 1, 60])
    assert client.hgetall("runner:run:r:failed") == {b"*": b"1"}


def test_the_fair_queue_scripts_use_the_part_names_of_the_keyspace() -> None:
    source = "".join(s.source for s in keyspace.SCRIPTS if s.files[0].startswith("fair_"))
    used = set(re.findall(r"key\(q, '(\w+)'\)", source))
    assert used == set(keyspace.FAIR_PARTS)
    assert f"{keyspace.SEP}tenant{keyspace.SEP}" in keyspace.tenant_list("q", keyspace.SEP, "t")
    assert "q .. ARGV[3] .. 'tenant' .. ARGV[3] .. tenant" in source


def test_roles_cover_every_key_and_name_no_other() -> None:
    patterns = {k.pattern for k in roles.KEYS}
    assert len(patterns) == len(roles.KEYS), "a key listed twice"
    named = {p for a in roles.ROLES.values() for p in (*a.read, *a.write)}
    assert named - patterns == set(), "roles name keys that KEYS does not list"
    assert patterns - named == set(), "keys no role reads or writes"
    assert set(roles.ROLES) == {"producer", "worker", "api", "monitor"}


def test_every_prefix_and_name_has_a_key_pattern() -> None:
    patterns = [k.pattern for k in roles.KEYS]
    names = [
        keyspace.data_key("d"),
        keyspace.run_key("r", "data"),
        keyspace.progress_key("r"),
        keyspace.hints_key("r"),
        keyspace.run_key("r", "compile"),
        keyspace.tenant_key("t"),
        keyspace.problem_key("p"),
        keyspace.languages_key("q"),
        keyspace.artifact_key("a"),
        keyspace.identity_key("i"),
        keyspace.heartbeat_key("c"),
        keyspace.api_key_key("k"),
        keyspace.record_key("s"),
        keyspace.inflight_key("k"),
        keyspace.body_key("s"),
        keyspace.idempotency_key("k", "h"),
        keyspace.submissions_key("k"),
        keyspace.rate_key("k", "read"),
        keyspace.streams_key("k"),
        keyspace.result_key("t"),
        keyspace.HOLDS,
        keyspace.KEPT,
        keyspace.ADMITTED,
        keyspace.ADMITTED_DEADLINE,
        keyspace.ADMITTED_TESTS,
        keyspace.ARTIFACTS_LRU,
        keyspace.ARTIFACTS_SIZE,
        keyspace.ARTIFACTS_BYTES,
        keyspace.SLOTS,
        keyspace.CONSUMERS,
        keyspace.SLEEP,
        keyspace.API_KEYS,
        keyspace.HOOKS_DUE,
        keyspace.HOOKS_DUE_CHANNEL,
    ]
    for name in names:
        globs = [re.escape(p).replace(r"\*", ".*") for p in patterns]
        assert any(re.fullmatch(g, name) for g in globs), name


def test_the_docs_table_is_the_keyspace_data() -> None:
    doc = (ROOT / "docs" / "monitoring.md").read_text()
    assert "## Redis keyspace" in doc
    assert roles.table() in doc, (
        "regenerate it: python -c 'from worker.keyspace.roles import table'"
    )


def test_the_scripts_ship_with_the_package() -> None:
    setup = (ROOT / "setup.cfg").read_text()
    assert "keyspace/*.lua" in setup
    shipped = {p.name for p in (WORKER / "keyspace").glob("*.lua")}
    assert shipped == {f for s in keyspace.SCRIPTS for f in s.files}
