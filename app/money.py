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
