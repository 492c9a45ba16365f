"""Money: exact conversions between minor units and decimals, display formats, and refusing floats."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import money
from app.money import EXPONENTS, MAX_AMOUNT, MoneyError, format_money, format_plain, to_decimal, to_minor

currencies = st.sampled_from(sorted(EXPONENTS))
amounts = st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)


@given(amounts, currencies)
def test_minor_to_decimal_and_back_is_exact(amount, currency):
    dec = to_decimal(amount, currency)
    assert isinstance(dec, Decimal)
    assert to_minor(dec, currency) == amount
    assert to_minor(str(dec), currency) == amount
    assert to_minor(format_plain(amount, currency), currency) == amount
    # The decimal has exactly the currency's number of decimals.
    assert -dec.as_tuple().exponent == EXPONENTS[currency]


@given(st.integers(min_value=-(10**60), max_value=10**60), currencies)
def test_conversion_is_exact_beyond_decimal_precision(amount, currency):
    assert to_minor(to_decimal(amount, currency), currency) == amount


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6,
                   min_value=Decimal("-1e12"), max_value=Decimal("1e12")), currencies)
def test_to_minor_accepts_exactly_the_decimals_the_currency_has(value, currency):
    scaled = value.scaleb(EXPONENTS[currency])
    if scaled == scaled.to_integral_value():
        assert to_minor(value, currency) == int(scaled)
    else:
        with pytest.raises(MoneyError):
            to_minor(value, currency)


@given(st.text(max_size=40), currencies)
def test_to_minor_never_raises_anything_but_money_error(text, currency):
    try:
        result = to_minor(text, currency)
    except MoneyError:
        return
    assert isinstance(result, int)


def test_context_precision_cannot_round_a_bad_value_into_a_good_one():
    with pytest.raises(MoneyError):
        to_minor("1.0000000000000000000000000000001", "USD")
    with pytest.raises(MoneyError):
        to_minor("1e-999999999", "USD")
    with pytest.raises(MoneyError):
        to_minor("1e999999999", "USD")
    assert to_minor("0e-999999999", "USD") == 0


@pytest.mark.parametrize("value", [0.1, 1.0, 150000.0, True, False])
def test_floats_and_bools_are_never_money(value):
    with pytest.raises(MoneyError):
        to_minor(value, "USD")
    with pytest.raises(MoneyError):
        money.validate_amount(value)
    with pytest.raises(MoneyError):
        to_decimal(value, "USD")
    with pytest.raises(MoneyError):
        format_money(value, "USD")


@pytest.mark.parametrize("amount, allow_zero, ok", [
    (1, False, True), (MAX_AMOUNT, False, True), (MAX_AMOUNT + 1, False, False),
    (0, False, False), (0, True, True), (-1, True, False), ("100", False, False), (None, False, False),
])
def test_validate_amount(amount, allow_zero, ok):
    if ok:
        assert money.validate_amount(amount, allow_zero=allow_zero) == amount
    else:
        with pytest.raises(MoneyError):
            money.validate_amount(amount, allow_zero=allow_zero)


@pytest.mark.parametrize("code, expected", [("usd", "USD"), (" vnd ", "VND"), ("IDR", "IDR")])
def test_normalize_currency(code, expected):
    assert money.normalize_currency(code) == expected


@pytest.mark.parametrize("code", ["JPY", "", "US", None, 840, "usdollar"])
def test_unsupported_currencies_are_refused(code):
    with pytest.raises(MoneyError):
        money.normalize_currency(code)


@pytest.mark.parametrize("amount, currency, expected", [
    (150_000, "VND", "150,000 ₫"),
    (0, "VND", "0 ₫"),
    (-20_000, "VND", "-20,000 ₫"),
    (1_250_000, "IDR", "Rp 1,250,000"),
    (123_450, "BDT", "৳1,234.50"),
    (5, "BDT", "৳0.05"),
    (120_000, "NPR", "Rs 1,200.00"),
    (2_499, "USD", "$24.99"),
    (-200, "USD", "-$2.00"),
    (100_000_000_00, "USD", "$100,000,000.00"),
    (1_999, "SGD", "19.99 SGD"),
])
def test_format_money(amount, currency, expected):
    assert format_money(amount, currency) == expected


@pytest.mark.parametrize("amount, currency, expected", [
    (12_345, "USD", "123.45"), (10_000, "VND", "10000"), (5, "NPR", "0.05"), (0, "BDT", "0.00"),
])
def test_format_plain(amount, currency, expected):
    assert format_plain(amount, currency) == expected


@given(amounts, currencies)
def test_format_money_shows_every_digit_of_the_amount(amount, currency):
    shown = format_money(amount, currency)
    digits = "".join(ch for ch in shown if ch.isdigit())
    assert int(digits) == abs(amount)
    assert shown.startswith("-") == (amount < 0)
