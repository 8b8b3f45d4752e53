"""Fleet identity and the sweeps' choices, against a fake engine that filters by label the way
Docker does (no Docker needed; the real-engine tests are in tests/sandbox/test_pool.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from worker.sandbox import broker_fleet, fleet_of
from worker.sandbox.container import (
    LABEL_FLEET,
    LABEL_OWNER,
    LABEL_SANDBOX,
    SandboxSpec,
    hardening,
)
from worker.sandbox.pools import SandboxPools
from worker.sandbox.reaper import (
    fleet_containers,
    owned_containers,
    remove_dead,
    remove_leftovers,
    remove_orphans,
)
from worker.settings import Settings

OLD = time.time() - 3600


class FakeContainer:
    def __init__(self, engine: FakeEngine, cid: str, labels: dict[str, str], **attrs: Any):
        self.id = cid
        self.attrs = {"Labels": labels, "Created": attrs.get("created", OLD), **attrs}
        self._engine = engine

    def remove(self, force: bool = False) -> None:
        assert force
        self._engine.removed.append(self.id)
        self._engine.containers.remove(self)


class FakeEngine:
    """``client.containers`` of a docker SDK client, as far as the reaper uses it."""

    def __init__(self, ignore_filters: bool = False) -> None:
        self.containers: list[FakeContainer] = []
        self.removed: list[str] = []
        self.ignore_filters = ignore_filters

    def add(self, cid: str, fleet: str | None, owner: str, state: str = "running", **kw: Any):
        labels = {LABEL_SANDBOX: "1", LABEL_OWNER: owner}
        if fleet is not None:
            labels[LABEL_FLEET] = fleet
        self.containers.append(FakeContainer(self, cid, labels, State=state, **kw))

    def list(self, **kw: Any) -> list[Any]:
        assert kw["all"] and kw["sparse"]
        wanted = [f.split("=", 1) for f in kw["filters"]["label"]]
        if self.ignore_filters:
            return list(self.containers)
        return [c for c in self.containers if all(c.attrs["Labels"].get(k) == v for k, v in wanted)]

    @property
    def ids(self) -> set[str]:
        return {c.id for c in self.containers}


class FakeClient:
    def __init__(self, engine: FakeEngine) -> None:
        self.containers = engine


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


def test_fleet_is_the_broker_without_credentials_or_spelled_defaults() -> None:
    same = [
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.1/0",
        "redis://127.0.0.1:6379",
        "redis://:secret@127.0.0.1:6379/0",
        "redis://user:other@127.0.0.1:6379/0",
        "REDIS://127.0.0.1:6379/0",
    ]
    assert len({broker_fleet(url) for url in same}) == 1
    others = [
        "redis://127.0.0.1:6380/0",  # the demo stack's Redis next to a host worker's
        "redis://127.0.0.1:6379/1",
        "redis://redis:6379/0",
        "rediss://127.0.0.1:6379/0",
        "amqp://127.0.0.1//",
    ]
    names = {broker_fleet(url) for url in [same[0], *others]}
    assert len(names) == 1 + len(others)
    assert broker_fleet("redis://127.0.0.1:6379/?db=3") == broker_fleet("redis://127.0.0.1/3")
    assert "secret" not in broker_fleet(same[3]) and len(broker_fleet(same[0])) == 12


def test_fleet_setting_overrides_the_broker_hash() -> None:
    settings = Settings.from_env({"RUNNER_BROKER_URL": "redis://h:6379/2"})
    assert fleet_of(settings) == broker_fleet("redis://h:6379/2")
    named = Settings.from_env({"RUNNER_BROKER_URL": "redis://h:6379/2", "RUNNER_FLEET": "blue"})
    assert fleet_of(named) == "blue"


def test_every_sandbox_carries_its_fleet_and_is_removed_once_it_exits() -> None:
    params = hardening(SandboxSpec(image="x", owner="o", fleet="f1"))
    assert params["labels"][LABEL_FLEET] == "f1"
    assert params["labels"][LABEL_OWNER] == "o"
    assert params["auto_remove"] is True


def test_orphan_sweep_keeps_other_fleets_sandboxes(engine: FakeEngine) -> None:
    engine.add("mine-dead", "A", "runner@gone")
    engine.add("mine-alive", "A", "runner@here")
    engine.add("mine-manual", "A", "manual")
    engine.add("theirs", "B", "runner@elsewhere")  # never answers fleet A's ping
    engine.add("theirs-same-name", "B", "runner@gone")
    engine.add("legacy", None, "runner@old")  # made before fleets had a label
    removed = remove_orphans(FakeClient(engine), {"runner@here"}, "runner@me", "A")
    assert removed == 1
    assert engine.removed == ["mine-dead"]


def test_orphan_sweep_spares_young_sandboxes(engine: FakeEngine) -> None:
    engine.add("young", "A", "runner@gone", created=time.time())
    assert remove_orphans(FakeClient(engine), set(), "runner@me", "A") == 0


def test_leftover_sweep_keeps_another_fleets_sandboxes_of_the_same_owner(engine) -> None:
    engine.add("mine", "A", "runner@host")
    engine.add("theirs", "B", "runner@host")  # node names coincide across fleets
    assert remove_leftovers(FakeClient(engine), "runner@host", "A") == 1
    assert engine.ids == {"theirs"}


def test_dead_sweep_removes_what_can_never_serve_again_in_its_fleet_only(engine) -> None:
    engine.add("exited", "A", "runner@x", state="exited")
    engine.add("dead", "A", "manual", state="dead")
    engine.add("never-started", "A", "runner@x", state="created")
    engine.add("starting", "A", "runner@x", state="created", created=time.time())
    engine.add("running", "A", "runner@x", state="running")
    engine.add("paused", "A", "runner@x", state="paused")
    engine.add("removing", "A", "runner@x", state="removing")
    engine.add("theirs-exited", "B", "runner@x", state="exited")
    assert remove_dead(FakeClient(engine), "A") == 3
    assert sorted(engine.removed) == ["dead", "exited", "never-started"]


def test_sweeps_stay_in_their_fleet_even_when_the_engine_does_not_filter() -> None:
    engine = FakeEngine(ignore_filters=True)
    engine.add("mine", "A", "runner@host", state="exited")
    engine.add("theirs", "B", "runner@host", state="exited")
    client = FakeClient(engine)
    assert [c.id for c in fleet_containers(client, "A")] == ["mine"]
    assert [c.id for c in owned_containers(client, "runner@host", "A")] == ["mine"]
    remove_leftovers(client, "runner@host", "A")
    remove_dead(client, "A")
    remove_orphans(client, set(), "runner@me", "A")
    assert engine.ids == {"theirs"}


def test_owned_containers_without_a_fleet_lists_every_fleets(engine: FakeEngine) -> None:
    engine.add("a", "A", "runner@host")
    engine.add("b", "B", "runner@host")
    assert {c.id for c in owned_containers(FakeClient(engine), "runner@host")} == {"a", "b"}


def test_pools_sweep_only_their_own_fleet_at_start_and_close() -> None:
    engine = FakeEngine()
    engine.add("crashed-mine", "f1", "o")
    engine.add("exited-mine", "f1", "runner@x", state="exited")
    engine.add("same-owner-theirs", "f2", "o")
    engine.add("exited-theirs", "f2", "runner@x", state="exited")
    spec = SandboxSpec(image="x", owner="o", fleet="f1")
    pools = SandboxPools(
        FakeClient(engine),  # type: ignore[arg-type]
        {"x": spec},
        size=0,
        max_jobs=1,
        uid_base=100000,
        health_interval_s=0,
    )
    assert (pools.owner, pools.fleet) == ("o", "f1")
    pools.start()
    pools.close()
    assert engine.ids == {"same-owner-theirs", "exited-theirs"}
    with pytest.raises(ValueError, match="same owner and fleet"):
        SandboxPools(
            FakeClient(engine),  # type: ignore[arg-type]
            {"x": spec, "y": replace(spec, fleet="f2")},
            size=0,
            max_jobs=1,
            uid_base=100000,
        )
