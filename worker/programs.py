"""Programs as the sandbox gets them: files, an entry point, a command. The contestant's, a
checker and an interactor are all of this kind; a compile step turns a
:class:`~worker.contract.ProgramSpec` (what was sent) into a :class:`Program` (what runs),
content-addressed by :func:`program_key`.

A program has two forms, and they are kept apart on purpose: none would be right with the
other's fields.

- :class:`~worker.contract.decoded.Source`, before it is built: its language, files, entry and
  compiler options, defined once, the stage in the type of its files. Decoded
  (:class:`~worker.contract.ProgramSpec`), each file's bytes in hand, with its command-line
  ``args``, where the submission was decoded; sent (:class:`~worker.messages.StoredProgram`),
  each file by reference to its stored bytes (a message stays small, and a worker whose cache
  let the program go compiles it again from them), with ``static``, how to build it, which its
  role decides (an interactor runs in any image); ``args`` are then the run's
  (:attr:`~worker.messages.RunMeta.args`; a checker has none).
- :class:`Program`, built: what compiling made, not what was sent: the language resolved to its
  registry entry, the files the compile step produced (the artifact, with its mode) and the
  command that starts it; options and ``static`` went into the build.

One converter joins each step: :func:`worker.data.storage.stored_program` (sent from decoded)
and :func:`worker.pipeline.compiling.program_for` (built from sent, through the cache);
:func:`key_of` names a build by the sent form's fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from worker.languages import Language
from worker.messages import StoredProgram


@dataclass(frozen=True)
class File:
    name: str  # a relative path in the job's work dir
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Program:
    """What each run of a program receives: its files (sources, or the compiled artifact) and
    the file it starts from."""

    kind: ClassVar[str] = "program"  # as a checker (worker.kinds)
    language: Language
    files: tuple[File, ...]
    entry: str = ""

    def command(
        self, args: Iterable[str] = (), *, memory_mb: int, stack_kb: int
    ) -> tuple[str, ...]:
        entry = self.entry or self.language.source_file
        return self.language.command(entry, args, memory_mb=memory_mb, stack_kb=stack_kb)


def program_key(
    language: str,
    compiler: str,
    files: Iterable[tuple[str, bytes]],
    entry: str,
    options: Iterable[str] = (),
    static: bool = False,
) -> str:
    """The content address of a compiled program: everything its compile depends on (the exact
    compiler image, each file's name and bytes, the entry, the options, a static build)."""
    digest = hashlib.sha256()
    parts: list[bytes] = [language.encode(), compiler.encode(), entry.encode()]
    for name, data in sorted(files):
        parts += [name.encode(), data]
    parts += [option.encode() for option in options]
    parts.append(b"static" if static else b"dynamic")
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def key_of(program: StoredProgram, identity: str, files: list[tuple[str, bytes]]) -> str:
    """The content address of a stored program compiled by the image ``identity``: the
    producer's compile shortcut looks it up, the worker's compile step stores under it."""
    return program_key(
        program.language, identity, files, program.entry, program.options, program.static
    )
