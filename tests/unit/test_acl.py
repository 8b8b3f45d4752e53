"""The Redis ACL users are written from the keyspace's one list (worker.keyspace.acl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.keyspace import SEP
from worker.keyspace.__main__ import broker_db, main
from worker.keyspace.acl import acl_file, concrete, password_hash, rules
from worker.keyspace.roles import KEYS, ROLES

ALL = {role: f"{role}-password" for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
def test_every_pattern_of_a_role_becomes_a_rule_and_no_other(role: str) -> None:
    made = rules(role, "runner", db=2)
    access = ROLES[role]
    channels = {k.pattern for k in KEYS if "channel" in k.type}
    for pattern in access.write:
        assert "~" + concrete(pattern, "runner", 2) in made
    for pattern in set(access.read) - set(access.write):
        assert "%R~" + concrete(pattern, "runner", 2) in made
    for pattern in channels & {*access.read, *access.write}:
        assert "&" + concrete(pattern, "runner", 2) in made
    keys = [r for r in made if r.startswith(("~", "%R~", "&"))]
    assert len(keys) == len({*access.read, *access.write}) + len(
        channels & {*access.read, *access.write}
    )
    # nothing dangerous, whatever the keys
    assert made.index("-@dangerous") > made.index("+@write")
    assert "+@all" not in made and "allkeys" not in made and "allchannels" not in made


def test_patterns_name_the_queue_the_separator_and_the_broker_db() -> None:
    assert concrete("{queue}␆␖tenants", "jobs") == f"jobs{SEP}tenants"
    assert concrete("/{db}.celeryev/*", "jobs", db=3) == "/3.celeryev/*"
    # a queue's glob characters match only themselves
    assert concrete("{queue}", "a*b?[c]") == "a\\*b\\?\\[c\\]"


def test_a_queue_with_a_space_cannot_be_written_into_a_rule() -> None:
    with pytest.raises(ValueError, match="spaces"):
        rules("worker", "my queue")


def test_the_file_turns_the_default_user_off_and_holds_no_password() -> None:
    text = acl_file(ALL, "runner")
    lines = text.splitlines()
    assert lines[0].startswith("user default off")
    assert [line.split()[1] for line in lines[1:]] == list(ROLES)
    for password in ALL.values():
        assert password not in text
        assert "#" + password_hash(password) in text


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="no role"):
        acl_file({"admin": "x"}, "runner")


def test_the_command_reads_password_files_and_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "worker").write_text("w-secret\n")
    (tmp_path / "monitor").write_text("m-secret\n")
    monkeypatch.setenv("RUNNER_QUEUE", "jobs")
    monkeypatch.setenv("RUNNER_BROKER_URL", "redis://h:1/4")
    assert main(["acl", "--passwords", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines()] == ["default", "worker", "monitor"]
    assert "w-secret" not in out and f"~jobs{SEP}*" in out and "&/4.celeryev/*" in out
    assert main(["acl", "--passwords", str(tmp_path / "none")]) == 2


def test_the_broker_db_is_read_from_its_url() -> None:
    assert broker_db("rediss://h:6380/5") == 5
    assert broker_db("redis://h") == 0
    assert broker_db("redis://a/2;redis://b/2") == 2
