"""Compiling a run's programs on a worker: the contestant's, its checker and its interactor,
each content-addressed in the program cache (:mod:`worker.data.artifacts`), compiled once whichever
submission or problem brings it, and compiled again from its stored files when the cache has
let it go (a test then costs a compile, never a verdict).

A contestant's program that does not compile is the submission's ``CE``; a checker or an
interactor that does not compile is the problem setter's, so the submission is refused
(``RJ`` ``checker_compile_error`` / ``interactor_compile_error``, the compiler's output in the
message) with nothing run.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from worker.contract import Verdict
from worker.data.artifacts import Stored
from worker.data.storage import program_files
from worker.errors import BrokerError
from worker.languages import LANGUAGES
from worker.messages import CompileOutcome, StoredProgram
from worker.pipeline import runtime
from worker.programs import File, Program, key_of

log = structlog.get_logger()
SHOWN_OUTPUT = 4096  # of a checker's or interactor's compiler output, in the refusal


@dataclass(frozen=True)
class Built:
    key: str
    outcome: CompileOutcome  # a verdict when there is no program (CE, IE, RJ)
    stored: Stored


def compile_role(
    rt: runtime.Runtime, role: str, program: StoredProgram, files: list[tuple[str, bytes]]
) -> Built:
    """A run's program of ``role``, from the cache or compiled now (and stored)."""
    language = LANGUAGES[program.language]
    key = key_of(program, rt.runner.identity(language.compile_image), files)
    stored = rt.store.get(key)
    cached = stored is not None
    if stored is None:
        stored = _build(rt, program, files)
        if stored.verdict is not Verdict.IE:
            rt.store.put(key, stored)
    output = stored.compile
    if output is not None and cached:
        output = output.model_copy(update={"cached": True})
    if stored.verdict is None:
        return Built(key, CompileOutcome(compile=output if role == "program" else None), stored)
    if role == "program" or stored.verdict is Verdict.IE:
        who = "" if role == "program" else f"{role}: "
        outcome = CompileOutcome(
            verdict=stored.verdict, message=who + stored.message, compile=output
        )
        return Built(key, outcome, stored)
    said = output.output[:SHOWN_OUTPUT] if output else ""
    outcome = CompileOutcome(
        verdict=Verdict.RJ,
        code=f"{role}_compile_error",
        message=f"{role}: {stored.message} ({program.language}):\n{said}".rstrip(),
    )
    return Built(key, outcome, stored)


def program_for(rt: runtime.Runtime, role: str, key: str | None, program: StoredProgram) -> Program:
    """The compiled program of ``role`` for a test: by ``key`` from the cache, or compiled
    again from the run's stored files when the cache let it go."""
    stored = rt.store.get(key) if key else None
    if stored is None:
        log.info("compile.again", role=role, key=(key or "")[:12])
        built = compile_role(rt, role, program, program_files(program, rt.intake.data))
        if built.outcome.verdict is not None:
            raise BrokerError(
                f"evicted from the cache, the {role} failed to compile again: "
                + built.outcome.message
            )
        stored = built.stored
    return Program(LANGUAGES[program.language], stored.files, program.entry)


def _build(rt: runtime.Runtime, program: StoredProgram, files: list[tuple[str, bytes]]) -> Stored:
    compiled = rt.judge.compile(
        LANGUAGES[program.language],
        [File(name, data) for name, data in files],
        entry=program.entry,
        options=program.options,
        static=program.static,
    )
    made = compiled.program.files if compiled.program else ()
    size = sum(len(f.data) for f in made)
    if size > rt.store.max_bytes:
        limit_kb = rt.store.max_bytes // 1024
        message = f"compiled program is {size // 1024} KB, over the {limit_kb} KB limit"
        return Stored((), Verdict.CE, message, compiled.result)
    return Stored(made, compiled.verdict, compiled.message, compiled.result)
