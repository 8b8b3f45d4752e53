"""The language registry: data, not code paths. One module per language, as DMOJ's executors
are: ``worker/languages/<name>.py`` defines ``LANGUAGE`` (a :class:`Language`, the model in
:mod:`worker.languages.model`), with the images it brings (:attr:`Language.images`) or the key
of another language's (C++ runs in C's). The package finds them itself, so adding a language
is one module here and one Dockerfile (or stage) under ``images/``.

Everything that names languages derives from :data:`LANGUAGES`: the contract's checks and
JSON Schema, the aliases a submission may use instead of a name (:data:`NAMES`), the CLI's
help, the HTTP API's ``/v1/languages``, the image catalogue, the benchmarks
(tests/unit/test_languages.py catches what drifts from it).

May import: nothing of worker outside this package.

Never imports: celery, kombu, docker, redis.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from worker.languages.model import BASE_ENV, OPTIMISATIONS, WARNINGS, Compile, Language

__all__ = [
    "BASE_ENV",
    "LANGUAGES",
    "NAMES",
    "OPTIMISATIONS",
    "WARNINGS",
    "Compile",
    "Language",
    "check",
    "language_named",
]

MODEL = "model"  # the one module of the package that is no language


def _discover() -> dict[str, Language]:
    """Every language module's ``LANGUAGE``, by name, in the order of their names."""
    found: dict[str, Language] = {}
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        if module == MODEL:
            continue
        loaded = importlib.import_module(f"{__name__}.{module}")
        where = f"worker/languages/{module}.py"
        if not hasattr(loaded, "LANGUAGE"):
            raise TypeError(f"{where} defines no LANGUAGE (every module here but model.py must)")
        language = loaded.LANGUAGE
        if not isinstance(language, Language):
            raise TypeError(f"{where}: LANGUAGE is {language!r}, not a Language")
        if language.name != module:
            raise ValueError(
                f"{where}: LANGUAGE.name is {language.name!r}; a language's module is named "
                f"after it ({language.name}.py)"
            )
        found[module] = language
    return found


def check(languages: Mapping[str, Language]) -> None:
    """Refuse a registry that would mislead: a name or alias two languages claim, an image no
    language declares or two declare, a source file that is not one of the language's
    sources. Each error names the language and its field."""
    claimed: dict[str, str] = {}
    declared: dict[str, str] = {}
    for lang in languages.values():
        for alias in (lang.name, *lang.aliases):
            other = claimed.setdefault(alias.lower(), lang.name)
            if other != lang.name:
                raise ValueError(f"{lang.name}: alias {alias!r} already names {other}")
        for spec in lang.images:
            other = declared.setdefault(spec.key, lang.name)
            if other != lang.name:
                raise ValueError(f"{lang.name}: images: {spec.key!r} is declared by {other} too")
        if not lang.is_source(lang.source_file):
            raise ValueError(
                f"{lang.name}: source_file {lang.source_file!r} is not one of its sources "
                f"{lang.sources}"
            )
    for lang in languages.values():
        needed = (("image", lang.image), ("compile.image", lang.compile_image))
        for field, key in needed:
            if key not in declared:
                raise ValueError(
                    f"{lang.name}: {field} {key!r} is declared by no language's images "
                    f"(declared: {', '.join(sorted(declared))})"
                )


LANGUAGES: dict[str, Language] = _discover()
check(LANGUAGES)

# every name a submission may give a language, in lower case -> the language's own name
NAMES: dict[str, str] = {
    alias.lower(): lang.name for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)
}


def language_named(name: str) -> Language | None:
    """The language a submission names, by its name or an alias, in any case."""
    found = NAMES.get(name.lower())
    return LANGUAGES[found] if found is not None else None
