"""Output comparison: decide whether a submission's output matches the expected output.

Runs in the worker, outside the sandbox, on raw bytes. Nothing is ever decoded, because
submissions may print anything (Latin-1, binary, broken UTF-8) and a checker that crashed on a
decode error would turn a wrong answer into an internal error.

Modes (:class:`CompareMode`):

``exact``
    The bytes are equal.
``tokens`` (default)
    The whitespace-separated tokens are equal byte for byte. Whitespace is the six ASCII bytes
    space, ``\\t``, ``\\n``, ``\\r``, ``\\v`` and ``\\f``; how much of it there is, and whether
    the output ends with a newline, does not matter.
``lines``
    Line by line (split on ``\\n``), after trailing whitespace (including ``\\r``) is stripped
    from each line and trailing blank lines are dropped. Leading whitespace matters.
``float``
    As ``tokens``, except that a pair of tokens which both parse as numbers passes when
    ``|a - b| <= abs_tol`` or ``|a - b| <= rel_tol * |b|`` (``b`` expected). NaN never
    matches anything, not even NaN; an infinity matches only the infinity of the same sign.
    Tokens with ``_`` are not numbers, although Python's ``float()`` would accept them.

:func:`compare` returns an :class:`Outcome` whose ``message`` gives a short reason on a
mismatch, quoting at most about 40 bytes of each side, e.g.
``token 3: expected '5', got '6'``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

# How many bytes of a token or line a message quotes, and how many of them come before the first
# difference, so that a long line differing at column 500 still shows where it differs.
_SHOWN = 40
_CONTEXT = 10
# Chunk size for locating the first differing byte: slices compared in C keep the search linear
# and fast, a byte-by-byte Python loop runs only inside the one chunk that differs.
_CHUNK = 1 << 16


class CompareMode(enum.StrEnum):
    """How expected and actual output are compared; see the module docstring."""

    TOKENS = "tokens"
    EXACT = "exact"
    LINES = "lines"
    FLOAT = "float"


@dataclass(frozen=True)
class Comparison:
    """A comparison mode and, for ``float``, its tolerances (both must be finite and >= 0)."""

    kind: ClassVar[str] = "builtin"  # as a checker (worker.kinds)
    mode: CompareMode = CompareMode.TOKENS
    abs_tol: float = 1e-6
    rel_tol: float = 1e-6

    def __post_init__(self) -> None:
        # Callers often build this from JSON, where the mode arrives as a plain string; normalise
        # it here so that an unknown mode fails at construction, not in the middle of judging.
        object.__setattr__(self, "mode", CompareMode(self.mode))
        for name in ("abs_tol", "rel_tol"):
            value = getattr(self, name)
            # NaN or negative tolerances would fail every pair, an infinite one would pass all.
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


@dataclass(frozen=True)
class Outcome:
    """The verdict of a comparison: ``message`` is a short reason when not ``ok``, else ``""``."""

    ok: bool
    message: str


_OK = Outcome(True, "")


def compare(expected: bytes, actual: bytes, how: Comparison = Comparison()) -> Outcome:
    """Compare a submission's ``actual`` output with ``expected`` as ``how`` says."""
    return _MODES[how.mode](expected, actual, how)


# --- modes ------------------------------------------------------------------------------------


def _compare_exact(expected: bytes, actual: bytes, _: Comparison) -> Outcome:
    if expected == actual:
        return _OK
    pos = _first_difference(expected, actual)
    if pos is None:
        return Outcome(False, f"output has {_count(len(actual), 'byte')}, expected {len(expected)}")
    return Outcome(False, f"byte {pos + 1} differs: {_show_pair(expected, actual, pos)}")


def _compare_tokens(expected: bytes, actual: bytes, _: Comparison) -> Outcome:
    # Identical bytes are the common case for accepted submissions; skip building token lists.
    if expected == actual:
        return _OK
    exp_tokens = expected.split()
    act_tokens = actual.split()
    if exp_tokens == act_tokens:
        return _OK
    for index, (exp, act) in enumerate(zip(exp_tokens, act_tokens, strict=False)):
        if exp != act:
            return _token_mismatch(index, exp, act)
    return _length_mismatch(len(exp_tokens), len(act_tokens), "token")


def _compare_lines(expected: bytes, actual: bytes, _: Comparison) -> Outcome:
    if expected == actual:
        return _OK
    exp_lines = _normalised_lines(expected)
    act_lines = _normalised_lines(actual)
    if exp_lines == act_lines:
        return _OK
    for index, (exp, act) in enumerate(zip(exp_lines, act_lines, strict=False)):
        if exp != act:
            pos = _first_difference(exp, act)
            if pos is None:  # one line is a prefix of the other
                pos = min(len(exp), len(act))
            return Outcome(
                False,
                f"line {index + 1} differs at column {pos + 1}: {_show_pair(exp, act, pos)}",
            )
    return _length_mismatch(len(exp_lines), len(act_lines), "line")


def _compare_floats(expected: bytes, actual: bytes, how: Comparison) -> Outcome:
    abs_tol, rel_tol = how.abs_tol, how.rel_tol
    exp_tokens = expected.split()
    act_tokens = actual.split()
    # Equal token lists pass without parsing a single number, unless some token could be a NaN,
    # which must fail even against itself; every spelling of NaN contains an "n" or "N".
    if exp_tokens == act_tokens and b"n" not in expected and b"N" not in expected:
        return _OK
    for index, (exp, act) in enumerate(zip(exp_tokens, act_tokens, strict=False)):
        # Same fast path per token: equal bytes without an "n" cannot hide a NaN.
        if exp == act and b"n" not in exp and b"N" not in exp:
            continue
        # This loop may run millions of times, so parsing and the common case of the tolerance
        # test are inlined rather than left to helper calls.
        # float() accepts "1_000" (PEP 515), which no judge's answer means as a number; hex such
        # as "0x10" it already rejects. Bytes parse as ASCII, so non-ASCII digits never count.
        try:
            if b"_" in exp or b"_" in act:
                raise ValueError(exp)
            exp_value = float(exp)
            act_value = float(act)
        except ValueError:
            # Not both numbers: equal bytes pass, anything else is a plain token mismatch.
            if exp != act:
                return _token_mismatch(index, exp, act)
            continue
        # A finite difference within tolerance implies both values are finite; an infinite one
        # (expected inf makes rel_tol * |b| inf too) and NaN go to the careful check.
        diff = abs(act_value - exp_value)
        if (diff <= abs_tol or diff <= rel_tol * abs(exp_value)) and diff != math.inf:
            continue
        reason = _numbers_differ(exp_value, act_value, abs_tol, rel_tol)
        if reason:
            return Outcome(False, f"{_token_mismatch(index, exp, act).message} ({reason})")
    if len(exp_tokens) == len(act_tokens):
        return _OK
    return _length_mismatch(len(exp_tokens), len(act_tokens), "token")


_MODES: dict[CompareMode, Callable[[bytes, bytes, Comparison], Outcome]] = {
    CompareMode.EXACT: _compare_exact,
    CompareMode.TOKENS: _compare_tokens,
    CompareMode.LINES: _compare_lines,
    CompareMode.FLOAT: _compare_floats,
}


# --- helpers ----------------------------------------------------------------------------------


def _normalised_lines(data: bytes) -> list[bytes]:
    lines = [line.rstrip() for line in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _numbers_differ(expected: float, actual: float, abs_tol: float, rel_tol: float) -> str:
    """Why ``actual`` does not match ``expected`` within tolerance, or ``""`` when it does."""
    if math.isnan(expected) or math.isnan(actual):
        return "NaN never matches"
    if math.isinf(expected) or math.isinf(actual):
        # inf - inf is NaN, so the tolerance test below cannot decide infinities.
        return "" if expected == actual else "infinity matches only the same infinity"
    diff = abs(actual - expected)
    if diff <= abs_tol or diff <= rel_tol * abs(expected):
        return ""
    return f"difference {diff:.3g} exceeds tolerance"


def _token_mismatch(index: int, expected: bytes, actual: bytes) -> Outcome:
    pos = _first_difference(expected, actual)
    if pos is None:
        pos = min(len(expected), len(actual))
    return Outcome(False, f"token {index + 1}: {_show_pair(expected, actual, pos)}")


def _length_mismatch(expected: int, actual: int, unit: str) -> Outcome:
    # Only reached when every common item matched, so the counts must differ.
    return Outcome(False, f"output has {_count(actual, unit)}, expected {expected}")


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _first_difference(a: bytes, b: bytes) -> int | None:
    """Index of the first byte where ``a`` and ``b`` differ; ``None`` if one is a prefix."""
    common = min(len(a), len(b))
    for start in range(0, common, _CHUNK):
        end = min(start + _CHUNK, common)
        if a[start:end] != b[start:end]:
            for pos in range(start, end):
                if a[pos] != b[pos]:
                    return pos
    return None


def _show_pair(expected: bytes, actual: bytes, pos: int) -> str:
    # Both sides are cut at the same offset so the quoted excerpts line up with each other.
    start = max(0, pos - _CONTEXT)
    return f"expected {_excerpt(expected, start)}, got {_excerpt(actual, start)}"


def _excerpt(data: bytes, start: int) -> str:
    end = start + _SHOWN
    # repr() of bytes escapes control and non-ASCII bytes; drop its b prefix to keep it short.
    shown = repr(data[start:end])[1:]
    if start > 0:
        shown = "..." + shown
    if end < len(data):
        shown += f"... ({len(data)} bytes)"
    return shown
