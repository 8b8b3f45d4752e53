"""Tests for worker.compare: every mode's verdicts and the messages shown on a mismatch."""

from __future__ import annotations

import time

import pytest

from worker.compare import CompareMode, Comparison, Outcome, compare

TOKENS = Comparison(CompareMode.TOKENS)
EXACT = Comparison(CompareMode.EXACT)
LINES = Comparison(CompareMode.LINES)
FLOAT = Comparison(CompareMode.FLOAT)
ALL_MODES = [TOKENS, EXACT, LINES, FLOAT]


# --- the API ------------------------------------------------------------------------------------


def test_default_comparison_is_tokens_with_1e_minus_6_tolerances() -> None:
    assert Comparison() == Comparison(CompareMode.TOKENS, 1e-6, 1e-6)
    assert compare(b"1  2\n", b"1 2") == Outcome(True, "")


def test_mode_given_as_string_is_normalised_to_the_enum() -> None:
    assert Comparison("float").mode is CompareMode.FLOAT  # type: ignore[arg-type]


def test_unknown_mode_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        Comparison("fuzzy")  # type: ignore[arg-type]


@pytest.mark.parametrize("tol", [-1e-9, float("nan"), float("inf")])
def test_negative_or_non_finite_tolerance_is_rejected(tol: float) -> None:
    with pytest.raises(ValueError, match="abs_tol"):
        Comparison(CompareMode.FLOAT, abs_tol=tol)
    with pytest.raises(ValueError, match="rel_tol"):
        Comparison(CompareMode.FLOAT, rel_tol=tol)


@pytest.mark.parametrize("how", ALL_MODES, ids=lambda c: c.mode.value)
def test_identical_output_passes_with_empty_message_in_every_mode(how: Comparison) -> None:
    assert compare(b"1 2 3\nhello\n", b"1 2 3\nhello\n", how) == Outcome(True, "")


# --- exact --------------------------------------------------------------------------------------


def test_exact_fails_on_a_missing_final_newline_and_reports_byte_counts() -> None:
    result = compare(b"42\n", b"42", EXACT)
    assert result == Outcome(False, "output has 2 bytes, expected 3")


def test_exact_fails_on_crlf_versus_lf() -> None:
    assert not compare(b"a\nb\n", b"a\r\nb\r\n", EXACT).ok


def test_exact_reports_the_first_differing_byte_one_based() -> None:
    result = compare(b"abcdef", b"abcXef", EXACT)
    assert result == Outcome(False, "byte 4 differs: expected 'abcdef', got 'abcXef'")


def test_exact_empty_expected_fails_against_whitespace_actual() -> None:
    assert compare(b"", b"", EXACT).ok
    assert compare(b"", b"\n", EXACT) == Outcome(False, "output has 1 byte, expected 0")


def test_exact_finds_a_difference_beyond_the_first_chunk() -> None:
    expected = b"a" * 200_000
    actual = expected[:150_001] + b"b" + expected[150_002:]
    assert compare(expected, actual, EXACT).message.startswith("byte 150002 differs:")


# --- tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actual",
    [
        b"1 2\n3\n",
        b"1 2\n3",  # missing final newline
        b"1 2\r\n3\r\n",  # CRLF
        b"1\t2\n3\n",  # tab
        b"  1   2 \n 3   \n\n\n",  # leading, trailing and repeated whitespace
        b"1\x0b2\x0c3",  # vertical tab and form feed are whitespace
        b"1\n2\n3\n",  # line structure does not matter
    ],
)
def test_tokens_ignore_amount_and_kind_of_ascii_whitespace(actual: bytes) -> None:
    assert compare(b"1 2\n3\n", actual, TOKENS).ok


def test_tokens_reports_first_differing_token_one_based() -> None:
    result = compare(b"1 2 5 7", b"1 2 6 8", TOKENS)
    assert result == Outcome(False, "token 3: expected '5', got '6'")


def test_tokens_compare_byte_for_byte_without_numeric_equivalence() -> None:
    assert not compare(b"3", b"3.0", TOKENS).ok
    assert not compare(b"yes", b"YES", TOKENS).ok


def test_tokens_too_few_reports_counts() -> None:
    result = compare(b"1 2 3 4", b"1 2 3", TOKENS)
    assert result == Outcome(False, "output has 3 tokens, expected 4")


def test_tokens_too_many_reports_counts() -> None:
    result = compare(b"1", b"1 2", TOKENS)
    assert result == Outcome(False, "output has 2 tokens, expected 1")


def test_tokens_mismatch_before_the_end_is_reported_rather_than_the_count() -> None:
    assert compare(b"1 2 3", b"9 2", TOKENS).message == "token 1: expected '1', got '9'"


@pytest.mark.parametrize("actual", [b"", b"\n", b" \t\r\n\x0b\x0c"])
def test_tokens_empty_expected_passes_empty_or_whitespace_actual(actual: bytes) -> None:
    assert compare(b"", actual, TOKENS).ok
    assert compare(b"\n", actual, TOKENS).ok


def test_tokens_empty_expected_fails_non_empty_actual() -> None:
    assert compare(b"", b"x", TOKENS) == Outcome(False, "output has 1 token, expected 0")


@pytest.mark.parametrize("separator", [b"\x1c", b"\x1f", b"\x85", b"\xa0", b"\x00"])
def test_tokens_non_ascii_whitespace_bytes_do_not_separate_tokens(separator: bytes) -> None:
    assert not compare(b"a b", b"a" + separator + b"b", TOKENS).ok


def test_tokens_long_tokens_are_truncated_in_the_message() -> None:
    expected = b"x" * 1000
    actual = b"y" * 1000
    message = compare(expected, actual, TOKENS).message
    assert message == (
        f"token 1: expected '{'x' * 40}'... (1000 bytes), got '{'y' * 40}'... (1000 bytes)"
    )


def test_tokens_long_token_message_shows_where_it_differs() -> None:
    expected = b"a" * 500 + b"X" + b"a" * 500
    actual = b"a" * 1001
    message = compare(expected, actual, TOKENS).message
    assert "'aaaaaaaaaaXaaaa" in message
    assert len(message) < 200


# --- lines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actual",
    [
        b"  a b\nc\n",
        b"  a b\nc",  # missing final newline
        b"  a b\r\nc\r\n",  # CRLF
        b"  a b \t\nc   \n",  # trailing spaces and tabs
        b"  a b\nc\n\n\n  \n\r\n",  # trailing blank lines, some holding whitespace
    ],
)
def test_lines_ignore_trailing_whitespace_and_trailing_blank_lines(actual: bytes) -> None:
    assert compare(b"  a b\nc\n", actual, LINES).ok


def test_lines_leading_whitespace_matters() -> None:
    result = compare(b"  a\n", b"a\n", LINES)
    assert result == Outcome(False, "line 1 differs at column 1: expected '  a', got 'a'")


def test_lines_inner_whitespace_matters() -> None:
    assert not compare(b"a b\n", b"a  b\n", LINES).ok


def test_lines_line_breaks_matter() -> None:
    result = compare(b"1 2\n3\n", b"1\n2 3\n", LINES)
    assert result.message == "line 1 differs at column 2: expected '1 2', got '1'"


def test_lines_leading_blank_lines_matter() -> None:
    assert not compare(b"a\n", b"\na\n", LINES).ok


def test_lines_blank_line_in_the_middle_matters() -> None:
    assert not compare(b"a\nb\n", b"a\n\nb\n", LINES).ok


def test_lines_reports_the_first_differing_line_one_based() -> None:
    assert compare(b"a\nb\nc\n", b"a\nx\nc\n", LINES).message.startswith("line 2 differs")


def test_lines_missing_line_reports_counts() -> None:
    result = compare(b"a\nb\nc\n", b"a\nb\n", LINES)
    assert result == Outcome(False, "output has 2 lines, expected 3")


@pytest.mark.parametrize("actual", [b"", b"\n", b"\r\n \n\t\n"])
def test_lines_empty_expected_passes_empty_or_whitespace_actual(actual: bytes) -> None:
    assert compare(b"", actual, LINES).ok


def test_lines_empty_expected_fails_non_empty_actual() -> None:
    assert compare(b"", b"x\n", LINES) == Outcome(False, "output has 1 line, expected 0")


# --- float --------------------------------------------------------------------------------------


def test_float_integer_expected_passes_close_decimal_with_defaults() -> None:
    assert compare(b"3", b"3.0000001", FLOAT).ok


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (b"0.5", b"0.5000009"),  # within abs_tol
        (b"1e9", b"1000000900"),  # abs diff 900, within rel_tol * 1e9
        (b"-2.5", b"-2.5000001"),
        (b"100", b"1e2"),  # exponent form
        (b"1.5E-3", b"0.0015"),  # upper-case exponent
        (b"5", b"+5"),
        (b".5", b"0.5"),
        (b"5.", b"5"),
    ],
)
def test_float_numbers_within_tolerance_pass(expected: bytes, actual: bytes) -> None:
    assert compare(expected, actual, FLOAT).ok


def test_float_difference_beyond_both_tolerances_fails_with_reason() -> None:
    result = compare(b"1 0.5", b"1 0.50001", FLOAT)
    assert result == Outcome(
        False, "token 2: expected '0.5', got '0.50001' (difference 1e-05 exceeds tolerance)"
    )


def test_float_absolute_tolerance_boundary() -> None:
    how = Comparison(CompareMode.FLOAT, abs_tol=0.25, rel_tol=0.0)
    assert compare(b"1", b"1.25", how).ok
    assert not compare(b"1", b"1.2501", how).ok


def test_float_relative_tolerance_is_relative_to_expected() -> None:
    how = Comparison(CompareMode.FLOAT, abs_tol=0.0, rel_tol=0.5)
    assert compare(b"10", b"15", how).ok  # |15-10| <= 0.5 * 10
    assert not compare(b"10", b"16", how).ok
    assert not compare(b"5", b"7.6", how).ok  # would pass if measured against actual (7.6)


def test_float_zero_tolerances_require_equal_values() -> None:
    how = Comparison(CompareMode.FLOAT, abs_tol=0.0, rel_tol=0.0)
    assert compare(b"0.1", b"1e-1", how).ok
    assert not compare(b"0.1", b"0.10000000001", how).ok


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(b"nan", b"nan"), (b"NaN", b"NaN"), (b"nan", b"1"), (b"1", b"nan"), (b"-nan", b"+nan")],
)
def test_float_nan_never_matches_anything(expected: bytes, actual: bytes) -> None:
    result = compare(expected, actual, FLOAT)
    assert not result.ok
    assert "NaN never matches" in result.message


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(b"inf", b"inf"), (b"inf", b"Infinity"), (b"-inf", b"-INF"), (b"1e400", b"inf")],
)
def test_float_infinity_matches_same_sign_infinity(expected: bytes, actual: bytes) -> None:
    assert compare(expected, actual, FLOAT).ok


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(b"inf", b"-inf"), (b"-inf", b"inf"), (b"inf", b"1e308"), (b"1e308", b"inf")],
)
def test_float_infinity_fails_against_other_sign_or_finite(expected: bytes, actual: bytes) -> None:
    assert not compare(expected, actual, FLOAT).ok


@pytest.mark.parametrize(("expected", "actual"), [(b"0", b"-0"), (b"-0.0", b"0"), (b"0", b"-0.0")])
def test_float_negative_zero_equals_zero(expected: bytes, actual: bytes) -> None:
    assert compare(expected, actual, FLOAT).ok


def test_float_non_numeric_tokens_must_match_exactly() -> None:
    assert compare(b"Case #1: 0.5", b"Case #1: 0.5000001", FLOAT).ok
    assert compare(b"YES 1", b"yes 1", FLOAT) == Outcome(
        False, "token 1: expected 'YES', got 'yes'"
    )


def test_float_number_against_non_number_fails() -> None:
    assert not compare(b"1", b"one", FLOAT).ok
    assert not compare(b"one", b"1", FLOAT).ok


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (b"1000", b"1_000"),  # float() accepts underscores; a judge must not
        (b"1_000", b"1000"),
        (b"16", b"0x10"),  # hex is not a number here
        (b"1", b"\xd9\xa1"),  # ARABIC-INDIC DIGIT ONE in UTF-8 is not an ASCII number
    ],
)
def test_float_underscore_hex_and_non_ascii_digits_are_not_numbers(
    expected: bytes, actual: bytes
) -> None:
    assert not compare(expected, actual, FLOAT).ok


def test_float_identical_non_numeric_tokens_with_underscore_pass() -> None:
    assert compare(b"a_b 1_0", b"a_b 1_0", FLOAT).ok


def test_float_ignores_whitespace_like_tokens() -> None:
    assert compare(b"1.5 2.5\n", b"1.5\r\n2.5000001", FLOAT).ok


def test_float_length_mismatch_reports_counts() -> None:
    result = compare(b"1.0 2.0", b"1.0 2.0 3.0", FLOAT)
    assert result == Outcome(False, "output has 3 tokens, expected 2")


def test_float_empty_expected_passes_whitespace_actual() -> None:
    assert compare(b"", b" \n", FLOAT).ok


# --- bytes that are not UTF-8 ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ALL_MODES, ids=lambda c: c.mode.value)
def test_non_utf8_output_equal_passes_in_every_mode(how: Comparison) -> None:
    data = b"\xff\xfe caf\xe9 \x80\n"
    assert compare(data, data, how).ok


@pytest.mark.parametrize("how", ALL_MODES, ids=lambda c: c.mode.value)
def test_non_utf8_mismatch_message_escapes_the_bytes(how: Comparison) -> None:
    result = compare(b"caf\xe9\n", b"caf\xc3\xa9\n", how)
    assert not result.ok
    assert "expected 'caf\\xe9" in result.message
    assert "got 'caf\\xc3\\xa9" in result.message


# --- large outputs ------------------------------------------------------------------------------


def _large_output(size: int = 5 * 1024 * 1024) -> bytes:
    line = b"123456 0.250000 word\n"
    return line * (size // len(line))


@pytest.mark.parametrize("how", ALL_MODES, ids=lambda c: c.mode.value)
def test_five_megabyte_output_compares_correctly_and_quickly(how: Comparison) -> None:
    expected = _large_output()
    reformatted = expected.replace(b"\n", b" \r\n")  # differs only in trailing whitespace
    started = time.perf_counter()
    assert compare(expected, expected, how).ok
    assert compare(expected, reformatted, how).ok is (how.mode is not CompareMode.EXACT)
    # A single changed byte near the end must still be found.
    broken = bytearray(reformatted if how.mode is not CompareMode.EXACT else expected)
    broken[-4] = ord(b"x")
    assert not compare(expected, bytes(broken), how).ok
    # Generous bound: catches quadratic behaviour, not slow machines.
    assert time.perf_counter() - started < 20


def test_five_megabyte_float_output_within_tolerance_passes() -> None:
    expected = b"0.5 " * (5 * 1024 * 1024 // 4)
    actual = b"0.5000001\n" * (5 * 1024 * 1024 // 4)
    assert compare(expected, actual, FLOAT).ok
    changed = actual[:-10] + b"0.6\n"
    assert compare(expected, changed, FLOAT).message.startswith(f"token {5 * 1024 * 1024 // 4}:")
