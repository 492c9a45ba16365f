"""Amounts typed by a person (app.money.parse_amount): by the currency's decimals and the locale's marks,
refusing what reads two ways. Property tests: whatever Babel writes reads back as the same amount, no text
is anything but an amount or a MoneyError, an ambiguous entry is always refused."""

import pytest
from babel.numbers import get_decimal_symbol, get_group_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

from app.i18n import format_locale, format_money_in
from app.money import EXPONENTS, MAX_AMOUNT, AmbiguousAmount, MoneyError, format_plain, parse_amount

currencies = st.sampled_from(sorted(EXPONENTS))
languages = st.sampled_from(["en", "vi", "id", "ne", "bn"])
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)


@pytest.mark.parametrize(("text", "currency", "locale", "minor"), [
    ("125.000", "VND", "en", 125_000),  # the defect: it was taken as 125 ₫
    ("125.000", "VND", "vi_VN", 125_000),
    ("125,000", "VND", "en", 125_000),
    ("125.000 ₫", "VND", "vi_VN", 125_000),
    ("Rp 850.000", "IDR", "id_ID", 850_000),
    ("1,250", "USD", "en", 125_000),
    ("1.250", "USD", "vi", 125_000),
    ("1,250.50", "USD", "en", 125_050),
    ("1.250,50", "USD", "en", 125_050),
    ("$1,234.56", "USD", "en", 123_456),
    ("12,50,000.00", "BDT", "en_IN", 125_000_000),
    ("১২৫.৫০", "BDT", "bn_BD", 12_550),
    ("1 250 000", "VND", "en", 1_250_000),
    ("25", "USD", "en", 2500),
    ("0.5", "USD", "en", 50),
    ("1.5", "USD", "vi", 150),
])
def test_reads_what_people_write(text, currency, locale, minor):
    assert parse_amount(text, currency, locale) == minor


@pytest.mark.parametrize(("text", "currency", "locale", "says"), [
    ("1.250", "USD", "en", "ambiguous: write 1,250.00 or 1.25"),
    ("1,250", "BDT", "vi", "ambiguous"),
    ("125,5", "VND", "vi", "VND has no decimals"),
    ("12.345", "BDT", "en", "ambiguous"),
    ("0.001", "USD", "en", "more decimals than USD allows"),
    ("1,25,0", "USD", "en", "not grouped in thousands"),
    ("-5", "USD", "en", "without a sign"),
    ("5e3", "USD", "en", "not an amount"),
    ("", "USD", "en", "enter an amount"),
    ("NaN", "USD", "en", "not an amount"),
])
def test_refuses_with_a_clear_message(text, currency, locale, says):
    with pytest.raises(MoneyError, match=says):
        parse_amount(text, currency, locale)


@settings(max_examples=150)
@given(amounts, currencies, languages)
def test_what_babel_writes_reads_back(amount, currency, language):
    locale = format_locale(language, currency)
    assert parse_amount(format_money_in(amount, currency, locale), currency, locale) == amount
    # The plain form (what the refund form is filled with) never has three decimals, so it reads back too.
    assert parse_amount(format_plain(amount, currency), currency, locale) == amount


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=999), st.integers(min_value=0, max_value=999), languages,
       st.sampled_from([c for c, e in EXPONENTS.items() if e]))
def test_decimal_mark_and_three_digits_is_ambiguous_where_the_currency_has_decimals(whole, part, language,
                                                                                      currency):
    locale = format_locale(language, currency)
    with pytest.raises(AmbiguousAmount):
        parse_amount(f"{whole}{get_decimal_symbol(locale)}{part:03d}", currency, locale)
    # Written with the locale's group mark instead, it is thousands.
    assert parse_amount(f"{whole}{get_group_symbol(locale)}{part:03d}", currency, locale) == (
        (whole * 1000 + part) * 10 ** EXPONENTS[currency])


@settings(max_examples=200)
@given(st.text(max_size=30), currencies, languages)
def test_any_text_is_an_amount_or_a_money_error(text, currency, language):
    try:
        value = parse_amount(text, currency, format_locale(language, currency))
    except MoneyError as exc:
        assert str(exc)
    else:
        assert isinstance(value, int) and value >= 0
