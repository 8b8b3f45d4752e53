"""What the judge needs from sandboxes: run a job in a given image. Real pools and the fake
pool both provide it."""

from __future__ import annotations

from typing import Protocol

from worker.sandbox.protocol import Job, RunReport


class Runner(Protocol):
    def run(self, image: str, job: Job, deadline: float) -> RunReport:
        """Run ``job`` in a sandbox of ``image`` (a catalogue key such as ``python``); the job's
        uid is chosen by the runner. Raises :class:`~worker.errors.SandboxError`."""
        ...

    def identity(self, image: str) -> str:
        """What exactly ``image`` is (its content tag), for content-addressed artifacts."""
        ...

    def state(self) -> list[dict[str, object]]:
        """Per-image pool state and counters, for ``runner status``."""
        ...

    def close(self) -> None: ...
