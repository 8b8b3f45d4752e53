"""A program of a submission or problem (the contestant's, a checker, an interactor) from its
wire fields: files and their names, the entry point, compiler options, arguments."""

from __future__ import annotations

import re

from worker.contract.decoded import Maxima, ProgramSpec, SourceFile
from worker.contract.fields import Decode, decoder, is_utf8, quoted, shorten
from worker.contract.wire import FileIn, ProgramIn, _ProgramFields
from worker.errors import SubmissionRejected
from worker.languages import LANGUAGES, Language, language_named

_PART = re.compile(r"[A-Za-z0-9._-]+")
MAX_PATH_PARTS = 8
MAX_PATH = 200
# what a program checker and an interactor find in their work dir, besides their own files
RESERVED = {"checker": ("input", "output", "answer"), "interactor": ("input", "output", "answer")}


def helper_program(
    wire: ProgramIn, role: str, decode: Decode, maxima: Maxima, languages: frozenset[str]
) -> ProgramSpec:
    """A checker's or interactor's program."""
    language = LANGUAGES[known_language(wire.language, f"{role}.language", languages)]
    if role == "interactor" and (language.compile is None or not language.compile.static):
        static = [name for name, lang in LANGUAGES.items() if lang.compile and lang.compile.static]
        raise SubmissionRejected(
            "unsupported_interactor",
            f"interactor.language: {quoted(wire.language)} cannot be an interactor (it runs beside "
            f"the program, in the program's sandbox); use {' or '.join(static)}",
        )
    return program_of(wire, language.name, f"{role}.", decode, maxima, args=None, role=role)


def program_of(
    wire: _ProgramFields,
    name: str,
    where: str,
    decode: Decode,
    maxima: Maxima,
    args: list[str] | None,
    role: str,
) -> ProgramSpec:
    """The files (``source`` written to the entry), entry point, options and arguments."""
    language = LANGUAGES[name]
    entry = wire.entry if wire.entry is not None else language.source_file
    files: list[tuple[str, SourceFile]] = []  # where each came from, and it
    if wire.source is None and not wire.files:
        raise SubmissionRejected(
            "missing_field", f"{where}source: Field required (or give `files`)"
        )
    if wire.source is not None:
        _file_name(entry, f"{where}entry", role, language)
        files.append((f"{where}source", SourceFile(entry, decode(wire.source, f"{where}source"))))
    for index, given in enumerate(wire.files or []):
        at = f"{where}files.{index}"
        files.append((f"{at}.name", _file(given, at, decode, role, language)))
    if len(files) > maxima.files:
        raise SubmissionRejected(
            "too_many_files",
            f"{where}files: {len(files)} files, at most {maxima.files} allowed",
        )
    first: dict[str, str] = {}
    for at, file in files:
        if file.name in first:
            raise SubmissionRejected(
                "duplicate_file",
                f"{at}: {quoted(file.name)} is given twice (first at {first[file.name]})",
            )
        first[file.name] = at
    names = set(first)
    if entry not in names:
        raise SubmissionRejected(
            "missing_entry",
            f"{where}entry: {quoted(entry)} is not among the files "
            f"({shorten(', '.join(sorted(names)))})",
        )
    if language.compile and not language.is_source(entry):
        raise SubmissionRejected(
            "bad_entry",
            f"{where}entry: {quoted(entry)} is not a {name} source file "
            f"({', '.join(language.sources)})",
        )
    total = sum(len(f.data) for _, f in files)
    if total > maxima.source_kb * 1024:
        raise SubmissionRejected(
            "source_too_large",
            f"{where}source: {total} bytes in all, at most {maxima.source_kb} KB allowed",
        )
    # the entry first: it is what runs, and the first translation unit
    ordered = sorted((f for _, f in files), key=lambda f: f.name != entry)
    return ProgramSpec(
        language=name,
        files=tuple(ordered),
        entry=entry,
        options=_options(wire.compiler_options or [], language, where, maxima),
        args=_args(args or [], maxima),
    )


def _file(given: FileIn, where: str, decode: Decode, role: str, language: Language) -> SourceFile:
    _file_name(given.name, f"{where}.name", role, language)
    encoding = given.encoding
    data = (
        decode(given.content, f"{where}.content")
        if encoding is None
        else decoder(encoding)(given.content, f"{where}.content")
    )
    return SourceFile(given.name, data)


def _file_name(name: str, where: str, role: str, language: Language) -> None:
    parts = name.split("/")
    why = None
    if not name or len(name) > MAX_PATH:
        why = f"must be 1 to {MAX_PATH} characters"
    elif name.startswith("/"):
        why = "must be a relative path"
    elif len(parts) > MAX_PATH_PARTS:
        why = f"has {len(parts)} parts, at most {MAX_PATH_PARTS} allowed"
    elif any(part in ("", ".", "..") for part in parts):
        why = "may not hold empty, . or .. parts"
    elif not all(_PART.fullmatch(part) for part in parts):
        why = "may hold only A-Z a-z 0-9 . _ - in each part, parts joined by /"
    elif name in RESERVED.get(role, ()) or (language.compile and name == language.compile.artifact):
        why = "is a name the judge gives a file of its own"
    if why:
        raise SubmissionRejected("bad_file_name", f"{where}: {quoted(name)} {why}")


def _options(given: list[str], language: Language, where: str, maxima: Maxima) -> tuple[str, ...]:
    extra = frozenset(option for lang, option in maxima.extra_options if lang == language.name)
    limit = language.compile.max_options if language.compile else 0
    if len(given) > limit:
        raise SubmissionRejected(
            "too_many_options",
            f"{where}compiler_options: {len(given)} options, at most {limit} allowed for "
            f"{language.name}",
        )
    longest = language.compile.max_option_chars if language.compile else 0
    for index, option in enumerate(given):
        at = f"{where}compiler_options.{index}"
        if language.compile and len(option) > longest:
            raise SubmissionRejected(
                "compiler_option_not_allowed",
                f"{at}: {len(option)} characters, at most {longest} allowed: {quoted(option)}",
            )
        if not language.option_allowed(option, extra):
            raise SubmissionRejected(
                "compiler_option_not_allowed",
                f"{at}: {quoted(option)} is not allowed for {language.name} (docs/contract.md "
                "lists what is)",
            )
    return tuple(given)


def _args(given: list[str], maxima: Maxima) -> tuple[str, ...]:
    if len(given) > maxima.args:
        raise SubmissionRejected(
            "bad_args", f"args: {len(given)} arguments, at most {maxima.args} allowed"
        )
    for index, arg in enumerate(given):
        if "\0" in arg or len(arg) > 1024:
            raise SubmissionRejected(
                "bad_args", f"args.{index}: at most 1024 characters and no NUL character"
            )
        if not is_utf8(arg):
            raise SubmissionRejected("invalid_utf8", f"args.{index}: not valid UTF-8")
    return tuple(given)


def known_language(name: str, where: str, languages: frozenset[str]) -> str:
    """The name of the language ``name`` names (itself or an alias, in any case)."""
    found = language_named(name)
    if found is None or found.name not in languages:
        raise SubmissionRejected(
            "unknown_language",
            f"{where}: {quoted(name)} is not one of {', '.join(sorted(languages))} (or an "
            "alias of one: GET /v1/languages, docs/contract.md)",
        )
    return found.name
