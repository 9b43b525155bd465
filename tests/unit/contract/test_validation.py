"""Zipcode and risk factor validation at the boundaries of the contract."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.validation import parse_risk_factor, parse_zipcode


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1000, 1000), (9999, 9999), ("9000", 9000), (" 1500 ", 1500), ("1000", 1000), (4321, 4321)],
)
def test_valid_zipcodes_are_parsed(raw: object, expected: int) -> None:
    assert parse_zipcode(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        999,
        10000,
        0,
        -1000,
        "999",
        "10000",
        "",
        " ",
        "abc",
        "9o00",
        "90 00",
        "+9000",
        "-9000",
        "9000.0",
        9000.0,
        True,
        False,
        None,
        [9000],
        {"z": 9000},
        "٩٠٠٠",
        "１０００",
        "1e3",
        "0x1F40",
        "09000",
        "9000\x00",
        "9000'; DROP TABLE zipcodes; --",
    ],
)
def test_invalid_zipcodes_are_refused_with_their_code(raw: object) -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode(raw)
    assert caught.value.code is ErrorCode.ZIPCODE_NOT_VALID


@given(st.integers())
def test_any_integer_is_accepted_exactly_when_in_range(number: int) -> None:
    if 1000 <= number <= 9999:
        assert parse_zipcode(number) == number
        assert parse_zipcode(str(number)) == number
    else:
        with pytest.raises(ZipscoreError):
            parse_zipcode(number)


@given(st.text(max_size=12))
def test_any_text_is_a_zipcode_or_a_contract_error(text: str) -> None:
    try:
        number = parse_zipcode(text)
    except ZipscoreError as exc:
        assert exc.code is ErrorCode.ZIPCODE_NOT_VALID
    else:
        assert 1000 <= number <= 9999
        assert text.strip() == str(number)


@pytest.mark.parametrize(("raw", "expected"), [("A", "A"), ("b", "B"), (" C ", "C")])
def test_valid_risk_factors(raw: str, expected: str) -> None:
    assert parse_risk_factor(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["D", "", " ", "AB", "A' OR '1'='1", "A;--", "%", "_", "a%", "Ａ", None, 1, ["A"], "A\x00"],
)
def test_invalid_risk_factors_are_refused(raw: object) -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_risk_factor(raw)
    assert caught.value.code is ErrorCode.RISK_FACTOR_NOT_VALID


def test_long_input_is_not_echoed_whole() -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode("x" * 10_000)
    assert len(caught.value.message) < 100


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        (ErrorCode.ZIPCODE_NOT_VALID, True),
        (ErrorCode.BAD_INPUT_FILE, True),
        (ErrorCode.WRONG_YEAR, True),
        (ErrorCode.RISK_FACTOR_NOT_VALID, True),
        (ErrorCode.TIMEOUT, False),
        (ErrorCode.BACKEND_UNAVAILABLE, False),
        (ErrorCode.INDEX_UNAVAILABLE, False),
    ],
)
def test_refused_input_codes(code: ErrorCode, refused: bool) -> None:
    assert code.is_refused_input is refused


def test_error_json_round_trip_and_unknown_codes() -> None:
    error = ZipscoreError(ErrorCode.TIMEOUT, "slow")
    assert error.to_json() == {"error": {"code": "TIMEOUT", "message": "slow"}}
    back = ZipscoreError.from_json(error.to_json())
    assert (back.code, back.message) == (ErrorCode.TIMEOUT, "slow")
    odd = ZipscoreError.from_json({"error": {"code": "NOPE"}})
    assert odd.code is ErrorCode.BACKEND_UNAVAILABLE


def test_refusal_messages_echo_the_value_exactly() -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode("abc")
    assert caught.value.message == "not a zipcode: 'abc'"
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode(None)
    assert caught.value.message == "not a zipcode: None"
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode(True)
    assert caught.value.message == "not a zipcode: True"
    with pytest.raises(ZipscoreError) as caught:
        parse_zipcode(999)
    assert caught.value.message == "zipcode 999 is outside 1000-9999"
    with pytest.raises(ZipscoreError) as caught:
        parse_risk_factor("D")
    assert caught.value.message == "risk factor must be one of A, B, C, not 'D'"


@pytest.mark.parametrize(("length", "echoed"), [(38, 40), (39, 40), (40, 40)])
def test_long_values_are_cut_to_forty_characters(length: int, echoed: int) -> None:
    with pytest.raises(ZipscoreError) as caught:
        parse_risk_factor("x" * length)
    shown = caught.value.message.split(", not ", 1)[1]
    assert len(shown) == echoed
    assert shown.endswith("...") is (length + 2 > 40)
    if length + 2 > 40:
        assert shown == repr("x" * length)[:37] + "..."
