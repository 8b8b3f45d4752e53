"""What every decoder shares: checks on the raw JSON that the models cannot make, text and
base64 decoding, and field paths as rejection messages spell them."""

from __future__ import annotations

import base64
import binascii
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from worker.errors import SubmissionRejected

# How much of a field path a message quotes: a path deep into a nested value, or a field name
# megabytes long, must not make the message itself huge.
_SHOWN = 200

# A path as (key, parent path), built while walking a submission: extending it costs the same
# at any depth, so a value nested a million deep is walked in linear time.
Path: TypeAlias = "tuple[str | int, Path] | None"
Decode: TypeAlias = Callable[[str, str], bytes]


def check_json(raw: dict[str, Any]) -> None:
    """Reject, wherever they are (known fields or not), what JSON cannot carry but Python's
    decoder lets through: non-finite numbers (``1e999``, ``Infinity``, ``NaN``) and field
    names that are not UTF-8. The models would misname the first (an infinite limit is "not a
    valid integer", NaN in an unknown field "not permitted") and cannot place the second."""
    # A loop over a stack of containers, not recursion: nesting has no bound here. Scalars are
    # checked in place, so a long array costs a few type tests per element.
    pending: list[tuple[dict[Any, Any] | list[Any], Path]] = [(raw, None)]
    while pending:
        container, path = pending.pop()
        nested: list[tuple[dict[Any, Any] | list[Any], Path]] = []
        if isinstance(container, dict):
            for key in container:
                if isinstance(key, str) and not is_utf8(key):
                    raise SubmissionRejected(
                        "invalid_utf8",
                        f"{spell(path)}: field name {quoted(key)} is not valid UTF-8",
                    )
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in items:
            if isinstance(value, dict | list):
                nested.append((value, (key, path)))
            elif isinstance(value, float) and not math.isfinite(value):
                raise SubmissionRejected(
                    "invalid_value",
                    f"{spell((key, path))}: {value} is not a finite number "
                    "(JSON has no infinity or NaN)",
                )
            # Only Python's unbounded ints hold such a number: other languages' JSON parsers
            # read it as a double, so as infinity; and str() of it fails past 4300 digits.
            elif isinstance(value, int) and abs(value) > sys.float_info.max:
                raise SubmissionRejected(
                    "invalid_value",
                    f"{spell((key, path))}: an integer of {value.bit_length()} bits is not a "
                    "finite number (beyond the range of a double)",
                )
        pending.extend(reversed(nested))  # the first nested value is looked at first


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def spell(path: Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        key, path = path
        parts.append(key)
    return where_of(reversed(parts))


def where_of(loc: Iterable[str | int]) -> str:
    """A field path as messages show it, e.g. ``tests.0.stdin``; ``submission`` for the whole."""
    return shorten(".".join(str(part) for part in loc) or "submission")


def shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def quoted(value: str) -> str:
    """A submitted value as every message quotes it: its ``repr``, at most ``_SHOWN``
    characters of it (and ``...``), however long the value (only its start is even looked at)."""
    return shorten(repr(value[: _SHOWN + 1]))


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type: backends in any language read the message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def decoder(encoding: str) -> Decode:
    def utf8(text: str, where: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # lone surrogates survive JSON decoding but are not UTF-8
            raise SubmissionRejected("invalid_utf8", f"{where}: not valid UTF-8") from None

    def b64(text: str, where: str) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SubmissionRejected("invalid_base64", f"{where}: not valid base64") from None

    return b64 if encoding == "base64" else utf8
