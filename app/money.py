"""Money rules: integer minor units plus an ISO 4217 currency, never floats.

`EXPONENTS` is how many minor-unit digits each supported currency has *in Paysmith*. VND and IDR have no
minor unit in practice (ISO lists IDR with 2, but no one pays in sen), so 10,000 VND is stored as 10000.
Gateway-specific scaling (VNPay ×100, Khalti paisa) lives in that gateway's adapter, not here.
"""

from decimal import Decimal

EXPONENTS = {
    "VND": 0,
    "IDR": 0,
    "BDT": 2,
    "NPR": 2,
    "USD": 2,
    "INR": 2,
    "SGD": 2,
    "MYR": 2,
    "THB": 2,
    "PHP": 2,
    "EUR": 2,
}

SYMBOLS = {"VND": "₫", "IDR": "Rp", "BDT": "৳", "NPR": "Rs", "USD": "$", "INR": "₹", "EUR": "€"}

#: Largest amount accepted in minor units (fits a signed 64-bit column with room to sum).
MAX_AMOUNT = 10**15


class MoneyError(ValueError):
    """An amount or currency that Paysmith refuses."""


def normalize_currency(code):
    """Return the upper-case ISO code if it is supported, else raise MoneyError."""
    if not isinstance(code, str):
        raise MoneyError("currency must be a 3-letter ISO code")
    upper = code.strip().upper()
    if upper not in EXPONENTS:
        raise MoneyError(f"currency {code!r} is not supported; use one of {', '.join(sorted(EXPONENTS))}")
    return upper


def validate_amount(amount, *, allow_zero=False):
    """Return `amount` if it is an int of minor units in range (bools and floats are refused)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError("amount must be an integer in minor units")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError("amount must be positive")
    if amount > MAX_AMOUNT:
        raise MoneyError("amount is too large")
    return amount


def exponent(currency):
    return EXPONENTS[normalize_currency(currency)]


def _require_int(amount):
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError(f"{amount!r} is not an integer amount of minor units")
    return amount


def to_decimal(amount, currency):
    """Minor units → Decimal major units, exact (12345 USD → Decimal('123.45'))."""
    sign, digits, exp = Decimal(_require_int(amount)).as_tuple()
    return Decimal((sign, digits, exp - exponent(currency)))  # no context rounding, whatever the size


def to_minor(value, currency):
    """A decimal string, Decimal or int in major units → int minor units.

    Raises MoneyError if the value has more decimals than the currency allows, and for floats and bools:
    a float has already lost the exact amount ('0.1' is not 0.1), so it is never money. Integer arithmetic
    on the decimal's digits, so no context precision can round a wrong value into an acceptable one.
    """
    if isinstance(value, (float, bool)):
        raise MoneyError(f"{value!r} is a {type(value).__name__}; pass a decimal string or Decimal")
    try:
        dec = Decimal(str(value).strip())
    except Exception as exc:  # decimal.InvalidOperation and friends
        raise MoneyError(f"{value!r} is not a decimal amount") from exc
    if not dec.is_finite():
        raise MoneyError(f"{value!r} is not a decimal amount")
    sign, digits, exp = dec.as_tuple()
    number = int("".join(map(str, digits)))
    if number == 0:
        return 0
    if dec.adjusted() > 100:  # no real amount comes near; keeps 10**shift small
        raise MoneyError(f"{value!r} is out of range")
    shift = exp + exponent(currency)
    if shift >= 0:
        number *= 10**shift
    else:
        if -shift > len(digits):
            raise MoneyError(f"{value!r} has more decimals than {currency} allows")
        number, rest = divmod(number, 10**-shift)
        if rest:
            raise MoneyError(f"{value!r} has more decimals than {currency} allows")
    return -number if sign else number


def format_plain(amount, currency):
    """Major units with the currency's decimals and no grouping: 12345 USD → '123.45', 10000 VND → '10000'."""
    exp = exponent(currency)
    return f"{to_decimal(amount, currency):.{exp}f}"


def format_money(amount, currency):
    """Display form for people: 12345 USD → '$123.45', 150000 VND → '150,000 ₫'."""
    currency = normalize_currency(currency)
    _require_int(amount)
    exp = EXPONENTS[currency]
    sign = "-" if amount < 0 else ""
    number = f"{abs(to_decimal(amount, currency)):,.{exp}f}"
    symbol = SYMBOLS.get(currency)
    if currency == "VND":
        return f"{sign}{number} {symbol}"
    if symbol:
        sep = " " if symbol.isalpha() else ""
        return f"{sign}{symbol}{sep}{number}"
    return f"{sign}{number} {currency}"


# --- amounts typed by a person ---------------------------------------------------------------------------

class AmbiguousAmount(MoneyError):
    """An entry that reads as two different amounts (e.g. "1.250" USD: 1.25 or 1,250.00)."""


#: Characters people put between groups of digits besides the locale's own: spaces of every width, the
#: apostrophe (Swiss), and the locale's symbols.
_SPACES = {" ", "\xa0", "\u202f", "\u2009", "'", "’"}
_MAX_DIGITS = 30
_DIGITS = set("0123456789")


def _grouped(integer_part, sep):
    """Whether `integer_part` is digits grouped by `sep` in threes (1,250,000) or the South Asian way
    (12,50,000: threes at the end, twos before)."""
    groups = integer_part.split(sep)
    if not all(g and set(g) <= _DIGITS for g in groups) or len(groups) < 2:
        return False
    head, middle, last = groups[0], groups[1:-1], groups[-1]
    if len(last) != 3 or not 1 <= len(head) <= 3 or head.startswith("0"):
        return False
    return all(len(g) == 3 for g in middle) or (len(head) <= 2 and all(len(g) == 2 for g in middle))


def _strip_currency(text, currency):
    from babel.numbers import get_currency_symbol

    marks = {currency, currency.lower(), SYMBOLS.get(currency, currency)}
    for locale in ("en", "vi", "id", "ne", "bn", "en_IN"):
        marks.add(get_currency_symbol(currency, locale))
    for mark in sorted(marks, key=len, reverse=True):
        if text.upper().startswith(mark.upper()):
            text = text[len(mark):]
        if text.upper().endswith(mark.upper()):
            text = text[:-len(mark)]
    return text.strip("".join(_SPACES))


def parse_amount(text, currency, locale="en"):
    """A person's amount → int minor units, read by the currency's decimals and the locale's separators.

    "125.000" VND is 125000 (VND has no decimals, so the dot can only group thousands, as Vietnamese
    write it), "1,250.50" USD is 125050, "1.250,50" too (whichever mark comes last is the decimal one),
    "12,50,000" BDT is grouped in lakhs. One mark followed by exactly three digits in a currency with
    decimals is a thousands group when it is the locale's group mark ("1,250" in English) and ambiguous
    when it is the locale's decimal mark ("1.250" in English could be 1.25 mistyped): AmbiguousAmount,
    whose message says how to write either. A currency sign or code around the number, spaces and
    non-Latin digits (০-৯, ०-९) are accepted; signs, letters and more decimals than the currency has are
    refused with MoneyError.
    """
    from babel import Locale
    from babel.numbers import get_decimal_symbol, get_group_symbol

    currency = normalize_currency(currency)
    if not isinstance(text, str):
        raise MoneyError("enter the amount as text, e.g. 25.00")
    raw = text.strip()
    if not raw:
        raise MoneyError("enter an amount")
    if len(raw) > 60:
        raise MoneyError("that is too long to be an amount")
    exp = EXPONENTS[currency]
    locale = Locale.parse(locale)
    decimal_mark, group_mark = get_decimal_symbol(locale), get_group_symbol(locale)
    body = "".join(str(int(c)) if c.isdecimal() else c for c in _strip_currency(raw, currency))
    if body[:1] in "-−+":
        raise MoneyError("enter the amount without a sign")
    for space in _SPACES | ({group_mark} - {".", ","}):
        body = body.replace(space, " ")
    if not body or any(c not in _DIGITS and c not in ". ," for c in body) or not _DIGITS & set(body):
        raise MoneyError(f"“{raw}” is not an amount; write it like {_example(exp, decimal_mark, group_mark)}")
    marks = [c for c in body if c in ".,"]
    integer, fraction = body, ""
    if marks:
        last = marks[-1]
        at = body.rindex(last)
        after = body[at + 1:]
        once = marks.count(last) == 1
        can_group = once and len(after) == 3 and _grouped(body.replace(" ", ""), last)
        if len(set(marks)) == 2 or (once and not can_group):
            integer, fraction = body[:at], after  # the last mark is the decimal one
            if not fraction or not set(fraction) <= _DIGITS:
                raise MoneyError(f"“{raw}” is not an amount")
        elif can_group and exp and last == decimal_mark:
            # Both readings are amounts of this currency: 1.250 is 1.25 mistyped or 1,250 grouped.
            whole = body[:at].replace(" ", "")
            raise AmbiguousAmount(
                f"“{raw}” is ambiguous: write {_example(exp, decimal_mark, group_mark, whole + after)} or "
                f"{whole}{decimal_mark}{after[:exp]} to say which amount of {currency} you mean")
    group = next((m for m in marks if integer.count(m)), None)
    if " " in integer.strip():
        if group is not None and group != " ":
            raise MoneyError(f"“{raw}” mixes spaces and marks between digit groups")
        group, integer = " ", integer.strip()
    if group is not None:
        if not _grouped(integer, group):
            raise MoneyError(f"“{raw}” is not an amount: its digits are not grouped in thousands")
        integer = integer.replace(group, "")
    if len(fraction) > exp:
        raise MoneyError(f"{currency} has no decimals" if exp == 0 else
                         f"“{raw}” has more decimals than {currency} allows ({exp})")
    if not integer:
        integer = "0"
    if not set(integer) <= _DIGITS or len(integer) + len(fraction) > _MAX_DIGITS:
        raise MoneyError(f"“{raw}” is not an amount")
    return int(integer) * 10**exp + int((fraction + "0" * exp)[:exp] or 0)


def _example(exp, decimal_mark, group_mark, digits="1250"):
    """`digits` written with grouping and the currency's decimals in the locale's marks: 1,250.00."""
    grouped = f"{int(digits):,}".replace(",", "\0").replace("\0", group_mark)
    return grouped + (decimal_mark + "0" * exp if exp else "")
